-- wrk script: sensor updates (PUT /.well-known/tte1/s/{DevURN}/v) with pre-sealed JWEs.
-- Each thread takes the devices whose index mod THREADS equals its id, so one device's
-- updates are sent in counter order. Usage: wrk -tTHREADS ... -s update.lua http://CTL -- updates.txt THREADS
local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
local reqs = {}
local i = 0
function init(args)
  local threads = tonumber(args[2])
  for line in io.lines(args[1]) do
    local dev, path, body = line:match("^(%d+)\t([^\t]+)\t(.+)$")
    if tonumber(dev) % threads == tid then
      reqs[#reqs + 1] = wrk.format("PUT", path, { ["Content-Type"] = "application/jose" }, body)
    end
  end
end
function request()
  i = i + 1
  -- Past the end, requests repeat and are (correctly) refused as replays: wrk counts them as non-2xx.
  return reqs[(i - 1) % #reqs + 1]
end
