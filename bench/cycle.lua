-- wrk script: POST with one credential header per request, cycling through
-- the lines of $HEADERS_FILE ("Header-Name: value" per line).
-- Env: HEADERS_FILE, BODY (default empty), CONTENT_TYPE (default form).
local lines = {}
local i = 0
local body = os.getenv("BODY") or ""
local content_type = os.getenv("CONTENT_TYPE") or "application/x-www-form-urlencoded"

function init(args)
  for line in io.lines(os.getenv("HEADERS_FILE")) do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name then lines[#lines + 1] = { name, value } end
  end
  i = math.random(#lines)
end

function request()
  i = i % #lines + 1
  local h = { [lines[i][1]] = lines[i][2] }
  if body ~= "" then h["Content-Type"] = content_type end
  return wrk.format("POST", nil, h, body)
end
