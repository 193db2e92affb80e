-- GET with the access token from the environment (BENCH_TOKEN); without one, a plain GET
-- (the /bench/hello ceiling). The path is the URL's, given on wrk's command line.
local token = os.getenv("BENCH_TOKEN")
wrk.method = "GET"
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.headers["Accept"] = "application/json"
