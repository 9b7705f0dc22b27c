-- The wrk script of `cargo xtask bench`: live sessions circulated between connections.
--
-- wrk's script sees requests and responses, not connections: `request()` builds the next
-- request of whichever connection is ready, `response()` sees some connection's answer.
-- So sessions are tokens in one queue: each request takes the token at the head, each
-- response puts one back at the tail (the cookie it sets, or, when it sets none, a known
-- session taken round-robin). A server that re-sends its cookie on every response (the
-- peers on `/counter`) gets each session back from its own response, one request in flight
-- per session; one that sets no cookie (beaker's server stores after the first write) may
-- get a session that is still in flight on another connection: two concurrent requests on
-- one session, as a browser's parallel requests are.
--
-- Arguments (after `--`): PATH, SESSIONS (the first SESSIONS requests prime a session
-- each with `GET /counter` and no cookie), FLOOR (the `Cookie` header is padded with a
-- cookie no server reads up to FLOOR bytes, so that every server parses requests of the
-- same shape, as `bench-load --cookie-floor` does).

local path, sessions, floor = "/counter", 32, 0
local primed = 0
local known, known_size, known_slot, known_next = {}, 0, 1, 1
local queue, head, tail = {}, 1, 0

function init(args)
   path = args[1] or path
   sessions = tonumber(args[2]) or sessions
   floor = tonumber(args[3]) or floor
end

local function push(cookie)
   tail = tail + 1
   queue[tail] = cookie
end

local function pop()
   if head > tail then
      return ""
   end
   local cookie = queue[head]
   queue[head] = nil
   head = head + 1
   return cookie
end

local function with_floor(cookie)
   local padding = floor - #cookie
   if padding <= 0 then
      return cookie
   end
   local sep = "; "
   if cookie == "" then
      sep = ""
   end
   local name = "bench-pad="
   return cookie .. sep .. name .. string.rep("x", math.max(1, padding - #sep - #name))
end

function request()
   local route, cookie = path, pop()
   if primed < sessions then
      primed = primed + 1
      route, cookie = "/counter", ""
   end
   return wrk.format("GET", route, { ["Cookie"] = with_floor(cookie) })
end

function response(status, headers, body)
   local set = headers["set-cookie"] or headers["Set-Cookie"]
   if set then
      local cookie = set:match("^[^;]*")
      -- The last SESSIONS cookies seen are the known sessions.
      known[known_slot] = cookie
      known_slot = known_slot % sessions + 1
      known_size = math.min(known_size + 1, sessions)
      push(cookie)
   elseif known_size > 0 then
      push(known[known_next])
      known_next = known_next % known_size + 1
   else
      push("")
   end
end
