-- wrk script: device fetch (GET /.well-known/tte1/{DevURN}/c) cycling over enrolled devices.
-- Usage: wrk ... -s fetch.lua http://TA -- fetch.txt
local paths = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
end
function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
