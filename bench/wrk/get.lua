-- GET of one URL (the item, from our endpoint or from the ceiling); the
-- bearer token comes with -H. Nothing per request but report.lua's count of
-- statuses, so wrk stays cheap.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
