"""Named constants, each with its unit and the reason for its value."""

DEFAULT_PORT = 9081  # GWE's documented default port
ID_PATTERN = r"^[0-9A-F]{32}$"  # GWE IDs: a UUID4 as 32 upper-case hex characters
VISIT_IDLE_TIMEOUT_S = 1800  # analytics convention: 30 min of inactivity ends a visit
HISTORY_RETENTION_DAYS = 90  # a quarter of history for agents and reports
HISTORY_FLUSH_INTERVAL_S = 0.5  # writes are batched behind the hot path, at most this late
VISIT_ROW_REFRESH_MS = 10_000  # a visit row's last_seen_at is written at most this often
HISTORY_FLUSH_MAX_ROWS = 2000  # one SQLite transaction stays short
MAX_BODY_BYTES = 256 * 1024  # a tracker batch of 50 events fits many times over
MAX_EVENTS_PER_BATCH = 100  # the tracker sends at most 50; room for other clients
MAX_EVENT_DATA_BYTES = 16 * 1024  # business event payloads are small key/values
MAX_EVENTS_KEPT_PER_NAME = 100  # per live visit and event name, for strategies
MAX_EVENT_IDS_KEPT_PER_VISIT = 1000  # for dropping duplicates; the store drops older ones
VISIT_SWEEP_INTERVAL_S = 30  # how often idle visits are closed
PURGE_INTERVAL_S = 3600  # retention purge runs hourly
API_KEY_FILE = "api-key"  # generated in the data folder on first start
ENGAGEMENT_EXPIRATION_S = 30  # GWE engagementExpirationTime: offer an attempt within this
LEDGER_DAYS = 30  # attempts kept in memory for per-visitor limits and cool-downs
PUSH_BUFFER_MESSAGES = 20  # per visit: more than a page misses while it reconnects
PUSH_MESSAGE_TTL_S = 120  # a page that reconnects within this gets what it missed
PUSH_HEARTBEAT_S = 15  # below the 30-60 s idle timeouts of common proxies
PUSH_RETRY_MS = 2000  # EventSource reconnect delay the engine asks for
REGISTRATION_FORM_EXPIRATION_S = 120  # GWE: a visitor filling the invitation's form holds it
SHOWN_GRACE_S = 5  # the page reports its own timeout; the engine's own comes this much later
