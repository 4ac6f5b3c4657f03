//! The Lua scripts: every compare-then-act and every write that must carry
//! its announcement runs as one script, so it is atomic on the server.
//! Scripts run with EVALSHA and are reloaded on NOSCRIPT. Every key passed
//! shares the `{namespace}` hash tag, so the scripts also work on Redis
//! Cluster.
//!
//! Counters that fence are seeded from the server clock when created —
//! leader terms in milliseconds, lock fencing tokens in microseconds — so
//! they keep rising across a loss of the dataset instead of restarting at 1
//! (unless a deployment changed leader more than once a millisecond).

use std::sync::LazyLock;

use fred::types::scripts::Script;

macro_rules! script {
    ($name:ident, $doc:literal, $lua:expr) => {
        #[doc = $doc]
        pub(crate) static $name: LazyLock<Script> = LazyLock::new(|| Script::from_lua($lua));
    };
}

script!(
    ELECTION_ACQUIRE,
    "KEYS: election, term. ARGV: token, node, lease ms. → {1, term} or {0, holder node, pttl, holder's term}.",
    r#"
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, '\n', 1, true)
  local tok = sep and string.sub(cur, 1, sep - 1) or cur
  if tok ~= ARGV[1] then
    return {0, sep and string.sub(cur, sep + 1) or '', redis.call('PTTL', KEYS[1]), tonumber(redis.call('GET', KEYS[2]) or '0')}
  end
end
local term = redis.call('INCR', KEYS[2])
if term == 1 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[2], t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000)))
  term = redis.call('INCR', KEYS[2])
end
redis.call('SET', KEYS[1], ARGV[1] .. '\n' .. ARGV[2], 'PX', ARGV[3])
return {1, term}
"#
);

script!(
    ELECTION_RENEW,
    "KEYS: election. ARGV: token, lease ms. → 1 when renewed, 0 on a mismatch.",
    r#"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local sep = string.find(cur, '\n', 1, true)
local tok = sep and string.sub(cur, 1, sep - 1) or cur
if tok ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"#
);

script!(
    ELECTION_RELEASE,
    "KEYS: election. ARGV: token, system channel, announcement. → 1 when released.",
    r#"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local sep = string.find(cur, '\n', 1, true)
local tok = sep and string.sub(cur, 1, sep - 1) or cur
if tok ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"#
);

script!(
    LOCK_ACQUIRE,
    "KEYS: lock, fence, waiters. ARGV: token, ttl ms, wait ms (0 when not waiting). → {1, fencing token} or {0, pttl}. Idempotent for its own token; a busy attempt that will wait marks the lock as awaited.",
    r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local fence = redis.call('INCR', KEYS[2])
  if fence == 1 then
    local t = redis.call('TIME')
    redis.call('SET', KEYS[2], t[1] .. string.format('%06d', tonumber(t[2])))
    fence = redis.call('INCR', KEYS[2])
  end
  return {1, fence}
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, tonumber(redis.call('GET', KEYS[2]) or '0')}
end
local wait = tonumber(ARGV[3])
if wait > 0 and redis.call('PTTL', KEYS[3]) < wait then
  redis.call('SET', KEYS[3], '1', 'PX', wait)
end
return {0, redis.call('PTTL', KEYS[1])}
"#
);

script!(
    LOCK_RELEASE,
    "KEYS: lock, waiters. ARGV: token, system channel, announcement. → 1 when released; announced only while someone waits.",
    r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('PUBLISH', ARGV[2], ARGV[3])
  end
  return 1
end
return 0
"#
);

script!(
    LOCK_EXTEND,
    "KEYS: lock. ARGV: token, ttl ms. → 1 when extended.",
    r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#
);

script!(
    COMPARE_AND_DELETE,
    "KEYS: key. ARGV: expected value. → 1 when deleted.",
    r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#
);

script!(
    INCR_BY,
    "KEYS: counter. ARGV: delta, ttl ms or ''. → new value; the TTL is set only on a key without one.",
    r#"
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[2] ~= '' and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
"#
);

script!(
    REVISION_BUMP,
    "KEYS: revision, epoch. ARGV: candidate epoch, events channel, event JSON. → {epoch, value}; publishes `R\\n<epoch>\\n<value>\\n<json>`.",
    r#"
local e = redis.call('GET', KEYS[2])
if not e then
  e = ARGV[1]
  redis.call('SET', KEYS[2], e)
end
local v = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[2], 'R\n' .. e .. '\n' .. v .. '\n' .. ARGV[3])
return {e, v}
"#
);

script!(
    REVISIONS_READ,
    "KEYS: epoch, revisions…. ARGV: candidate epoch. → {epoch, value…} (0 for never bumped).",
    r#"
local e = redis.call('GET', KEYS[1])
if not e then
  e = ARGV[1]
  redis.call('SET', KEYS[1], e)
end
local out = {e}
for i = 2, #KEYS do
  out[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
return out
"#
);

script!(
    HEARTBEAT,
    "KEYS: nodes, node info, epoch. ARGV: node, info JSON, max age ms, candidate epoch. → epoch. Prunes stale members.",
    r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[3])))
for _, id in ipairs(stale) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local e = redis.call('GET', KEYS[3])
if not e then
  e = ARGV[4]
  redis.call('SET', KEYS[3], e)
end
return e
"#
);

script!(
    MEMBERS,
    "KEYS: nodes, node info. ARGV: max age ms. → {id, last seen ms, info JSON, …} of live members.",
    r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf', 'WITHSCORES')
local out = {}
for i = 1, #live, 2 do
  local info = redis.call('HGET', KEYS[2], live[i])
  if info then
    out[#out + 1] = live[i]
    out[#out + 1] = live[i + 1]
    out[#out + 1] = info
  end
end
return out
"#
);

script!(
    LEAVE,
    "KEYS: nodes, node info. ARGV: node. Removes the member at once.",
    r#"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"#
);
