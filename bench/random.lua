-- wrk script: requests whose method and path a client made up, as in
-- issue 14 (made-up methods on /healthz, now and then a 7 KiB one; paths
-- that match no route; ids in a route's parameter). None needs a credential.
local long = string.rep("X", 7 * 1024)
local n = 0

function init(args)
  math.randomseed(os.time())
end

function request()
  n = n + 1
  local r = math.random(1, 1000000000)
  local kind = n % 4
  if kind == 0 then
    local method = (n % 100 == 0) and ("LONG" .. r .. long) or string.format("M%x", r)
    return wrk.format(method, "/healthz")
  elseif kind == 1 then
    return wrk.format("GET", "/no/such/" .. r)
  elseif kind == 2 then
    return wrk.format(string.format("M%x", r), "/api/v1/keys/" .. r)
  end
  return wrk.format("GET", "/healthz")
end
