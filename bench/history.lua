-- wrk load for GET /api/v1/wallet/transactions (the first history page) as one signed-in user
-- (BENCH_TOKEN). A static request: wrk builds it once, so the client costs next to nothing.
wrk.method = "GET"
wrk.path = "/api/v1/wallet/transactions?limit=" .. (os.getenv("BENCH_PAGE_SIZE") or "20")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
