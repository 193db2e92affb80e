-- POST the JSON body in SIM_BODY (a chat completion, a completion or an embeddings request) to
-- the URL given on wrk's command line; used by benchmarks/sim.sh.
local body = os.getenv("SIM_BODY")
assert(body and body ~= "", "SIM_BODY must be set")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = body
