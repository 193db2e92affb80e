-- POST /auth/login with the benchmark account (BENCH_EMAIL, BENCH_PASSWORD) as a JSON body.
local email = os.getenv("BENCH_EMAIL")
local password = os.getenv("BENCH_PASSWORD")
assert(email and password, "BENCH_EMAIL and BENCH_PASSWORD must be set")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
-- Neither value needs JSON escaping (run.sh uses plain ASCII without quotes or backslashes).
wrk.body = '{"email":"' .. email .. '","password":"' .. password .. '"}'
