-- wrk script for bench/ingest.py: POST /monitoring/events with fresh, valid tracker events.
--
--   wrk -t1 -c64 -d10s -s bench/ingest.lua http://127.0.0.1:PORT/monitoring/events \
--       -- EVENTS_PER_REQUEST RUN_NONCE SESSION_NONCE VISITORS [BATCHES]
--
-- BATCHES "mixed" (the default): each event of a request from a visitor drawn for it, a
-- batch no tracker sends (the worst case: every event a different visit); "visit": the whole
-- request from one visitor, as the tracker batches one page's events.
-- RUN_NONCE (12 hex) makes every eventID of this wrk run unique across runs; SESSION_NONCE
-- (12 hex) names a pool of VISITORS visitors (visitID, pageID, globalVisitID) shared by all
-- runs of one benchmark, so visits accumulate as on a real site. Every response is checked:
-- non-2xx statuses are counted, and the engine's "accepted"/"duplicates" are summed. done()
-- prints one line "BENCH_RESULT {json}" that bench/ingest.py parses.

local threads = {}

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

-- per-thread state (each wrk thread has its own Lua state)
local per_request, run_nonce, session_nonce, n_visitors, by_visit
local tid_hex
local counter = 0
local clock = 0
local visitors = {}
ok2xx = 0
bad = 0
accepted = 0
duplicates = 0
unparsed = 0

local function hex16(n)
   -- 16 upper hex digits for 0 <= n < 2^53, without relying on 64-bit %X
   local hi = math.floor(n / 4294967296)
   local lo = n - hi * 4294967296
   return string.format("%08X%08X", hi, lo)
end

function init(args)
   per_request = tonumber(args[1]) or 1
   run_nonce = args[2] or "000000000000"
   session_nonce = args[3] or "000000000000"
   n_visitors = tonumber(args[4]) or 1000
   by_visit = args[5] == "visit"
   tid_hex = string.format("%04X", tid)
   math.randomseed(tid * 7919 + os.time())
   for i = 1, n_visitors do
      visitors[i] = {
         visit = session_nonce .. "0001" .. hex16(i),
         page = session_nonce .. "0002" .. hex16(i),
         gvid = session_nonce .. "0003" .. hex16(i),
         url = "http://localhost:8000/products/" .. i,
      }
   end
   clock = os.time() * 1000
end

local headers = {
   ["Content-Type"] = "application/json",
   ["Origin"] = "http://localhost:8000",
}

local function event(v)
   counter = counter + 1
   clock = clock + 1
   local sku = counter % 500
   return '{"eventType":"BUSINESS","eventName":"AddToCart","eventID":"'
      .. run_nonce .. tid_hex .. hex16(counter)
      .. '","pageID":"' .. v.page
      .. '","visitID":"' .. v.visit
      .. '","globalVisitID":"' .. v.gvid
      .. '","timestamp":' .. string.format("%d", clock)
      .. ',"url":"' .. v.url
      .. '","category":"","languageCode":"en-GB","data":{"sku":"SKU-' .. sku
      .. '","price":' .. (1000 + sku) .. '}}'
end

function request()
   local parts = {}
   local v = visitors[math.random(1, n_visitors)]
   for i = 1, per_request do
      if not by_visit and i > 1 then
         v = visitors[math.random(1, n_visitors)]
      end
      parts[i] = event(v)
   end
   local body = '{"events":[' .. table.concat(parts, ",") .. ']}'
   return wrk.format("POST", nil, headers, body)
end

function response(status, hdrs, body)
   if status >= 200 and status < 300 then
      ok2xx = ok2xx + 1
      local a, d = string.match(body, '"accepted":%s*(%d+),%s*"duplicates":%s*(%d+)')
      if a then
         accepted = accepted + tonumber(a)
         duplicates = duplicates + tonumber(d)
      else
         unparsed = unparsed + 1
      end
   else
      bad = bad + 1
      if bad <= 3 then
         io.stderr:write("non-2xx " .. status .. ": " .. string.sub(body, 1, 300) .. "\n")
      end
   end
end

function done(summary, latency, requests)
   local ok, nbad, acc, dup, unp = 0, 0, 0, 0, 0
   for _, t in ipairs(threads) do
      ok = ok + t:get("ok2xx")
      nbad = nbad + t:get("bad")
      acc = acc + t:get("accepted")
      dup = dup + t:get("duplicates")
      unp = unp + t:get("unparsed")
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"ok2xx":%d,"non2xx":%d,'
         .. '"accepted":%d,"duplicates":%d,"unparsed":%d,"connect_errors":%d,'
         .. '"read_errors":%d,"write_errors":%d,"timeouts":%d,"status_errors":%d,'
         .. '"lat_p50_us":%d,"lat_p99_us":%d,"lat_max_us":%d}\n',
      summary.requests, summary.duration, summary.bytes, ok, nbad, acc, dup, unp,
      e.connect, e.read, e.write, e.timeout, e.status,
      latency:percentile(50), latency:percentile(99), latency.max))
end
