-- GET of one URL (the item, our endpoint or the ceiling); the bearer token
-- comes with -H. Only the report: no per-request Lua, so wrk stays cheap.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
