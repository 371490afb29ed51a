-- wrk script for benches/authzen/run.sh: POSTs the body file named by the
-- environment variable BODY, and checks every answer (status 200, the body
-- `{"decision":true}`); `done` prints how many were checked and wrong.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.body = f:read("*a")
f:close()

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  seen, wrong = 0, 0
end

function response(status, headers, body)
  seen = seen + 1
  if status ~= 200 or body ~= '{"decision":true}' then
    wrong = wrong + 1
  end
end

function done(summary, latency, requests)
  local s, w = 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("seen")
    w = w + t:get("wrong")
  end
  io.write(string.format("checked %d wrong %d\n", s, w))
end
