-- wrk script: POST one iris row as JSON records (the body bentolite's DataframeInput reads)
wrk.method = "POST"
wrk.body = "[[5.1, 3.5, 1.4, 0.2]]"
wrk.headers["Content-Type"] = "application/json"
