"""Session recordings: metadata in ClickHouse (`session_replay_events`), snapshots as compressed blocks in
object storage (`RECORDINGS_STORAGE_URL`), exported and served block by block in PostHog's file format."""
