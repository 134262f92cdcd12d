-- wrk script: CreateMailbox with a fresh device claim and request id per request, 200-byte
-- sealed payload (the size of a small authorization-token credential).
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
local function uuid()
  return (("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"):gsub("[xy]", function(c)
    local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
    return string.format("%x", v)
  end))
end
local body = '{"payload":{"type":"AEAD_AES_128_GCM","data":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsc="},'
  .. '"displayInformation":{"title":"Bench","description":"Bench key","imageURL":"https://example.com/i.png"},'
  .. '"mailboxConfiguration":{"accessRights":"RD","expiration":"2099-01-01T00:00:00Z"}}'
request = function()
  return wrk.format("POST", "/v1/m", {
    ["Content-Type"] = "application/json",
    ["Mailbox-Device-Claim"] = uuid(),
    ["Mailbox-Request-ID"] = uuid(),
  }, body)
end
