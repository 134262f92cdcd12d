-- wrk script: ReadSecureContentFromMailbox on mailboxes listed in $IDS_FILE (one path per
-- line, e.g. /v1/m/<uuid>), all bound to one recipient claim by a first read.
local ids = {}
local claim = "5b0f4c36-8d1e-4c2a-9f57-0c1d2e3f4a5b"
init = function(args)
  for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end
request = function()
  return wrk.format("POST", ids[math.random(1, #ids)], {
    ["Mailbox-Device-Claim"] = claim,
  }, "")
end
-- Any non-2xx answer shows up in wrk's "Non-2xx or 3xx responses" line: a valid run has none.
