-- POST /api/v1/items with a new sku on every request:
--   wrk -s post.lua -H "Authorization: Bearer ..." URL -- <run id>
-- sku = <run id>-<thread>-<counter>: the run id is unique per run, the
-- thread number is handed out by report.lua's setup(), the counter is per
-- thread (each wrk thread has its own Lua state), so no two requests ever send
-- the same sku (a repeated one would be a 409, counted as an error). The name carries the run
-- id too, so that the items a run stored can be counted (the list's q=).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local prefix = "bench"
local counter = 0

function init(args)
  prefix = args[1] or prefix
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"sku":"%s-%d-%d","name":"Bench %s item","price":"9.99","quantity":1}',
    prefix, thread_number, counter, prefix
  )
  return wrk.format(nil, nil, nil, body)
end
