//! Publishing the recorded events to a Redis stream, each once and in order: the Lua
//! script that skips what an earlier attempt already added.

use redis::Script;

use super::RedisTransport;
use crate::queue::QueueError;

/// Appends events (ARGV: max length, then number and JSON of each, numbers increasing) to
/// the stream KEYS[1] as entries `0-<number>`, skipping those not above the stream's last
/// id: they were published before. Compared here rather than left to XADD's refusal, so one
/// event already there does not stop the rest, and atomically, so two publishers at once
/// still add each event once, in order. A stream whose last id has a time part was written
/// by a version that let Redis choose the ids: an error, not a silent skip of every event.
const PUBLISH: &str = r#"
local last = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      local ms, seq = string.match(info[i + 1], '^(%d+)-(%d+)$')
      if tonumber(ms) ~= 0 then
        return redis.error_reply('events stream ' .. KEYS[1] .. ' holds entries with ids chosen by Redis (written by an earlier version): set queue.events_stream to a new stream, or rename this one')
      end
      last = tonumber(seq)
    end
  end
end
local added = 0
for i = 2, #ARGV, 2 do
  local number = tonumber(ARGV[i])
  if number > last then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '0-' .. ARGV[i], 'event', ARGV[i + 1])
    last = number
    added = added + 1
  end
end
return added
"#;
static PUBLISH_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(PUBLISH));

impl RedisTransport {
    /// Appends numbered events `(stream_seq, json)`, in increasing number order, to
    /// `stream` (field `event`) under the entry ids `0-<stream_seq>`, trimming it to about
    /// `max_len`, in one round trip. An event whose id is not above the stream's last one
    /// is there already (published by an attempt whose mark was lost) and is not added
    /// again. Returns how many were added.
    pub async fn publish(
        &self,
        stream: &str,
        max_len: usize,
        events: &[(i64, String)],
    ) -> Result<u64, QueueError> {
        if events.is_empty() {
            return Ok(0);
        }
        let mut invocation = PUBLISH_SCRIPT.key(stream);
        invocation.arg(max_len);
        for (stream_seq, event) in events {
            invocation.arg(*stream_seq).arg(event);
        }
        let mut conn = self.conn.clone();
        let added: u64 = invocation.invoke_async(&mut conn).await?;
        Ok(added)
    }
}
