"""The two Lua scripts of push across nodes: each is one atomic round trip on the keys of one
visit (hash-tagged ``{visitID}``, so they stay on one Redis Cluster slot).

Per visit: a Redis Stream (the replay buffer, entry ids ``<message id>-0``, fields ``p`` page
or ``-`` and ``f`` the SSE frame) and a meta hash: ``s`` the last message id, ``b`` the first
id of this buffer's life (its birth: what Centrifugo calls the epoch) and ``t`` the newest id
the bound trimmed away. Message ids are ``max(last + 1, Redis clock in ms)``: they keep growing
when Redis loses the buffer, so a page never takes a new message for one it has handled.
"""

from __future__ import annotations

# KEYS: stream, meta. ARGV: page ('-': every page), the frame's JSON after its id
# ('"channel":...,"data":...}'), bound, TTL (s), channel, publish command, node.
PUBLISH = """
local clock = redis.call('TIME')
local id = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local meta = redis.call('HMGET', KEYS[2], 's', 'b')
local top = tonumber(meta[1])
if top and top >= id then id = top + 1 end
local sid = string.format('%.0f', id)
local born = meta[2] or sid
local bound = tonumber(ARGV[3])
local length = redis.call('XLEN', KEYS[1])
if length >= bound then
  local dropped = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', length - bound + 1)
  local last = dropped[#dropped][1]
  redis.call('HSET', KEYS[2], 't', string.sub(last, 1, string.find(last, '-', 1, true) - 1))
end
local frame = 'id: ' .. sid .. '\\nevent: message\\ndata: {"id":' .. sid .. ','
frame = frame .. ARGV[2] .. '\\n\\n'
redis.call('XADD', KEYS[1], 'MAXLEN', bound, sid .. '-0', 'p', ARGV[1], 'f', frame)
redis.call('HSET', KEYS[2], 's', sid, 'b', born)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
local head = sid .. ' ' .. born .. ' ' .. ARGV[7] .. ' ' .. ARGV[1]
redis.call(ARGV[6], ARGV[5], head .. '\\n' .. frame)
return sid
"""

# KEYS: stream, meta. ARGV: the last id the page handled, TTL (ms).
# Returns the Redis clock (ms), the meta's s, b and t ('' when absent) and the entries after
# the id that are younger than the TTL.
READ = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local meta = redis.call('HMGET', KEYS[2], 's', 'b', 't')
local from = math.max(tonumber(ARGV[1]) + 1, now - tonumber(ARGV[2]))
local entries = redis.call('XRANGE', KEYS[1], string.format('%.0f', from), '+')
return {string.format('%.0f', now), meta[1] or '', meta[2] or '', meta[3] or '', entries}
"""
