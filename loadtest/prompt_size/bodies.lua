-- wrk script for loadtest/prompt_size.sh: POSTs the bodies in a directory (0.json ..
-- <count-1>.json, made by bodies.py) in turn. Each request is formatted once in init, so a
-- request costs the script one table lookup, whatever its size.
--   wrk -s bodies.lua http://HOST:PORT/v1/chat/completions -- DIR COUNT
local requests, count, i = {}, 0, 0

function init(args)
    local dir = args[1]
    count = assert(tonumber(args[2]), "usage: -- DIR COUNT")
    for k = 0, count - 1 do
        local f = assert(io.open(dir .. "/" .. k .. ".json", "rb"))
        local body = f:read("*a")
        f:close()
        requests[k + 1] = wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
    end
end

function request()
    i = i % count + 1
    return requests[i]
end
