"""Examples of insights, dashboards, their share links and embed pages, and subscriptions to them."""

from export_pipeline.api.examples import html_page

_CREATED = "2026-11-02T09:30:12.139597Z"
_RANGE = {"date_from": "2026-10-01T00:00:00Z", "date_to": "2026-11-01T00:00:00Z"}

INSIGHT_BODY = {"name": "Weekly pageviews and sign-ups", "description": "Top of the funnel, week by week",
                "query": {"kind": "trends", "events": ["$pageview", "signed_up"], "interval": "week", **_RANGE}}
INSIGHT_PATCH = {"description": "Top of the funnel, week by week (all platforms)"}
INSIGHT = {"id": "568480e17397ae45", "project_id": 1, "name": INSIGHT_BODY["name"],
           "description": INSIGHT_BODY["description"],
           "query": {**_RANGE, "kind": "trends", "events": ["$pageview", "signed_up"], "math": "total",
                     "interval": "week", "breakdown": None},
           "created_by": "alice", "created_at": _CREATED, "updated_at": _CREATED}
INSIGHT_RESULT = {"insight_id": "568480e17397ae45", "kind": "trends", "columns": ["bucket", "series", "value"],
                  "rows": [["2026-09-28", "$pageview", 1204], ["2026-09-28", "signed_up", 87],
                           ["2026-10-05", "$pageview", 1391], ["2026-10-05", "signed_up", 102]]}

DASHBOARD_BODY = {"name": "Growth", "description": "Acquisition and activation",
                  "tiles": [{"insight_id": "568480e17397ae45", "width": 6, "height": 4},
                            {"insight_id": "cc57d1af0749a280", "width": 6, "height": 4}]}
DASHBOARD_PATCH = {"name": "Growth (weekly review)"}
DASHBOARD = {"id": "459ff5469080497a", "project_id": 1, **DASHBOARD_BODY, "created_by": "alice",
             "created_at": _CREATED, "updated_at": _CREATED}

_TOKEN = "006W4AMDgHMZ7aGvK9QkEL4yfjWnLq2ofSZRVcU9rs0"
SHARE_LINK_BODY = {"expires_at": "2027-01-01T00:00:00Z"}
SHARE_LINK = {"id": "ea20cda43ad1694d", "project_id": 1, "resource": "dashboard", "target_id": "459ff5469080497a",
              "created_by": "alice", "created_at": "2026-11-02T09:40:24.199420Z", "expires_at": "2027-01-01T00:00:00Z",
              "revoked_at": None, "active": True}
CREATED_SHARE_LINK = {**SHARE_LINK, "token": _TOKEN, "url": f"https://exports.example.com/embed/dashboards/{_TOKEN}"}
SHARE_LINK_LIST = {"data": [SHARE_LINK], "sharing_enabled": True}
REVOKED_SHARE_LINK = {**SHARE_LINK, "revoked_at": "2026-11-20T16:02:11.482005Z", "active": False}

INSIGHT_PAGE = html_page("Weekly pageviews and sign-ups",
                         '<main class="embed"><h1>Weekly pageviews and sign-ups</h1><canvas></canvas></main>')
DASHBOARD_PAGE = html_page("Growth", '<main class="embed"><h1>Growth</h1><section data-tile="0">')

SUBSCRIPTION_BODY = {
    "resource": "dashboard", "target_id": "459ff5469080497a", "title": "Weekly numbers",
    "message": "For the Monday sync",
    "schedule": {"frequency": "weekly", "weekdays": ["MO"], "hour": 9, "timezone": "Europe/Berlin"},
    "destinations": [{"kind": "email", "email": "ann@example.com"},
                     {"kind": "slack", "workspace": "acme", "channel": "#metrics"}],
}
SUBSCRIPTION_PATCH = {"message": "For the Monday sync and the board", "enabled": True}
_EMAIL = {"id": "cac7c34d29478ed0", "enabled": True, "disabled_reason": None, "kind": "email",
          "email": "ann@example.com"}
_SLACK = {"id": "67785653a7c69e96", "enabled": True, "disabled_reason": None, "kind": "slack", "workspace": "acme",
          "channel": "#metrics"}
SUBSCRIPTION = {
    "id": "50e54c2560ca6949", "project_id": 1, "resource": "dashboard", "target_id": "459ff5469080497a",
    "title": "Weekly numbers", "message": "For the Monday sync",
    "schedule": {"frequency": "weekly", "interval": 1, "weekdays": ["MO"], "day_of_month": None, "hour": 9,
                 "minute": 0, "timezone": "Europe/Berlin", "start": "2026-11-02T10:50:24+01:00", "until": None},
    "rrule": "DTSTART;TZID=Europe/Berlin:20261102T105024\n"
             "RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
    "description": "Every week on Monday at 09:00 (Europe/Berlin)", "next_delivery_at": "2026-11-09T08:00:00Z",
    "destinations": [_EMAIL, _SLACK], "created_by": "alice", "enabled": True, "disabled_reason": None,
    "created_at": "2026-11-02T09:50:24.214248Z", "updated_at": "2026-11-02T09:50:24.214248Z",
}
SUBSCRIPTION_LIST = {"data": [SUBSCRIPTION]}
REVOKED_LINKS = {**SUBSCRIPTION, "updated_at": "2026-11-20T16:05:40.239479Z", "unsubscribe_version": 2}
DELIVERY_LIST = {"data": [{
    "id": "d_50e54c2560ca6949_20261109T080000Z", "subscription_id": "50e54c2560ca6949",
    "scheduled_for": "2026-11-09T08:00:00Z", "state": "partially_failed", "run_id": "4f0d7c1e-2b1a-4c55-9d0e-8a9b",
    "error": None, "created_at": "2026-11-09T08:00:03.120044Z", "finished_at": "2026-11-09T08:00:41.908112Z",
    "destinations": [
        {"destination_id": _EMAIL["id"], "destination": _EMAIL, "state": "succeeded", "detail": "sent by SendGrid",
         "error": None, "attempts": 1},
        {"destination_id": _SLACK["id"], "destination": _SLACK, "state": "failed", "detail": None,
         "error": "Slack answered channel_not_found: invite the bot to #metrics, or pick another channel.",
         "attempts": 1},
    ],
}]}
UNSUBSCRIBED_PAGE = html_page("Unsubscribed", "<h1>Unsubscribed</h1><p>You will no longer receive “Weekly numbers” "
                                              "at ann@example.com.</p>")
