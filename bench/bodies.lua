-- wrk script: POST a form body per request, cycling through the lines of
-- $BODIES_FILE (one urlencoded body per line): for grants whose credential
-- travels in the body, such as RFC 8693's subject_token.
local bodies = {}
local i = 0

function init(args)
  for line in io.lines(os.getenv("BODIES_FILE")) do
    if line ~= "" then bodies[#bodies + 1] = line end
  end
  i = math.random(#bodies)
end

function request()
  i = i % #bodies + 1
  return wrk.format("POST", nil, { ["Content-Type"] = "application/x-www-form-urlencoded" }, bodies[i])
end
