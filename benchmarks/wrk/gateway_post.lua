-- POST the JSON body in SIM_BODY to the URL on wrk's command line, with the API key in
-- GATEWAY_KEY as a bearer token when set; used by benchmarks/gateway.sh.
local body = os.getenv("SIM_BODY")
assert(body and body ~= "", "SIM_BODY must be set")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("GATEWAY_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
wrk.body = body
