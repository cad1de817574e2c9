"""Subscriptions over HTTP (members manage their own, Maintainer+ manage all), their deliveries, the
unsubscribe pages (no login; GET never unsubscribes; RFC 8058 one-click POST) and the `subscriptions` CLI."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from export_pipeline.accounts.roles import Role, add_member
from export_pipeline.accounts.tokens import create_token
from export_pipeline.api.app import create_app
from export_pipeline.insights.store import InsightStore
from export_pipeline.subscriptions.records import DeliveryState
from export_pipeline.subscriptions.store import SubscriptionStore
from export_pipeline.subscriptions.unsubscribe import issue_unsubscribe

PROJECT, OTHER = 9970, 9971
BASE = f"/api/v1/projects/{PROJECT}/subscriptions"
RANGE = {"date_from": "2026-03-01", "date_to": "2026-03-04"}
# Mondays 09:00 in Berlin from 2030-01-07 (winter: 08:00Z): the first delivery is known whenever the tests run.
WEEKLY = {"frequency": "weekly", "weekdays": ["MO"], "hour": 9, "timezone": "Europe/Berlin",
          "start": "2030-01-07T00:00:00"}
FIRST_SLOT = datetime(2030, 1, 7, 8, tzinfo=UTC)


@pytest.fixture(scope="module")
def data(store) -> dict:
    for user, role in {"sam": Role.GUEST, "rita": Role.REPORTER, "mia": Role.MAINTAINER}.items():
        add_member(store.engine, PROJECT, user, role)
    add_member(store.engine, OTHER, "otto", Role.OWNER)
    book = InsightStore(store.engine)
    insight = book.create_insight(PROJECT, name="Sign-ups", created_by="mia", query={"kind": "number", **RANGE})
    dashboard = book.create_dashboard(PROJECT, name="Weekly", created_by="mia",
                                      tiles=[{"insight_id": insight.id}])
    elsewhere = book.create_insight(OTHER, name="Elsewhere", created_by="otto", query={"kind": "number", **RANGE})
    tokens = {user: create_token(store.engine, user)[0] for user in ("sam", "rita", "mia", "otto", "stranger")}
    return {"insight": insight, "dashboard": dashboard, "elsewhere": elsewhere, "tokens": tokens,
            "subscriptions": SubscriptionStore(store.engine)}


@pytest.fixture(scope="module")
def client(settings, data) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def as_(data, who: str) -> dict:
    return {"Authorization": f"Bearer {data['tokens'][who]}"}


def body(data, **changes) -> dict:
    return {"resource": "insight", "target_id": data["insight"].id, "title": "Weekly sign-ups",
            "schedule": WEEKLY, "destinations": [{"kind": "email", "email": "ann@example.com"}], **changes}


def subscribe(client, data, who: str = "sam", **changes) -> dict:
    response = client.post(BASE, headers=as_(data, who), json=body(data, **changes))
    assert response.status_code == 201, response.text
    return response.json()


def link(data, subscription_id: str, email: str, version: int = 1) -> str:
    """A link as a delivery sends it."""
    token = issue_unsubscribe(data["subscriptions"].engine, subscription_id=subscription_id, email=email,
                              version=version)
    return f"/unsubscribe/{token}"


def text_of(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)).strip()


def test_create_a_weekly_berlin_subscription(client, data):
    created = client.post(BASE, headers=as_(data, "sam"), json=body(data, message="Numbers for the Monday sync", destinations=[
        {"kind": "email", "email": " Ann@Example.com "}, {"kind": "slack", "workspace": "acme", "channel": "#growth"}]))
    assert created.status_code == 201, created.text
    got = created.json()
    ids = [d["id"] for d in got["destinations"]]
    assert re.fullmatch(r"[0-9a-f]{16}", got["id"]) and all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", got["created_at"]) and got["updated_at"] == got["created_at"]
    assert got == {
        "id": got["id"], "project_id": PROJECT, "resource": "insight", "target_id": data["insight"].id,
        "title": "Weekly sign-ups", "message": "Numbers for the Monday sync",
        "schedule": {"frequency": "weekly", "interval": 1, "weekdays": ["MO"], "day_of_month": None, "hour": 9,
                     "minute": 0, "timezone": "Europe/Berlin", "start": "2030-01-07T00:00:00+01:00", "until": None},
        "rrule": "DTSTART;TZID=Europe/Berlin:20300107T000000\n"
                 "RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
        "description": "Every week on Monday at 09:00 (Europe/Berlin)",
        "next_delivery_at": "2030-01-07T08:00:00Z",
        "destinations": [
            {"id": ids[0], "kind": "email", "enabled": True, "disabled_reason": None, "email": "Ann@Example.com"},
            {"id": ids[1], "kind": "slack", "enabled": True, "disabled_reason": None, "workspace": "acme",
             "channel": "#growth"},
        ],
        "created_by": "sam", "enabled": True, "disabled_reason": None,
        "created_at": got["created_at"], "updated_at": got["updated_at"],
    }
    assert client.get(f"{BASE}/{got['id']}", headers=as_(data, "rita")).json() == got
    listed = client.get(BASE, headers=as_(data, "rita"))
    assert listed.status_code == 200 and got in listed.json()["data"]
    # A dashboard, in summer time: 09:00 in Berlin is 07:00Z.
    summer = subscribe(client, data, resource="dashboard", target_id=data["dashboard"].id,
                       schedule={**WEEKLY, "start": "2030-06-03T00:00:00"})
    assert summer["resource"] == "dashboard" and summer["next_delivery_at"] == "2030-06-03T07:00:00Z"


@pytest.mark.parametrize(("change", "details"), [
    ({"schedule": {**WEEKLY, "timezone": "Mars/Olympus"}},
     {"schedule.timezone": "unknown time zone 'Mars/Olympus'; use an IANA name such as 'Europe/Berlin' or 'UTC'"}),
    ({"destinations": []}, {"destinations": "List should have at least 1 item after validation, not 0"}),
    ({"destinations": [{"kind": "slack", "workspace": "acme"}]},
     {"destinations.0": "a Slack destination needs `workspace` (a key of SLACK_BOT_TOKENS) and `channel`"}),
    ({"destinations": [{"kind": "email", "email": "ann@example.com"}, {"kind": "email", "email": "not-an-address"}]},
     {"destinations.1": "`email` must be an email address, got 'not-an-address'"}),
    ({"created_by": "mia"}, {"created_by": "Extra inputs are not permitted"}),
])
def test_invalid_subscriptions_name_their_fields(client, data, change, details):
    response = client.post(BASE, headers=as_(data, "sam"), json=body(data, **change))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["details"] == details
    field, message = next(iter(details.items()))
    assert error["message"] == f"Invalid subscription: {field}: {message}."


def test_invalid_schedule_in_a_patch_names_its_field(client, data):
    mine = subscribe(client, data)
    response = client.patch(f"{BASE}/{mine['id']}", headers=as_(data, "sam"),
                            json={"schedule": {**WEEKLY, "hour": 25}})
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"schedule.hour": "Input should be less than or equal to 23"}


def test_members_manage_their_own_maintainers_manage_all(client, data):
    guests = subscribe(client, data, who="sam")
    maintainers = subscribe(client, data, who="mia", title="The maintainer's")
    assert guests["created_by"] == "sam" and maintainers["created_by"] == "mia"

    def patch(who: str, subscription: dict, **change):
        return client.patch(f"{BASE}/{subscription['id']}", headers=as_(data, who), json=change)

    own = patch("sam", guests, title="Renamed by its owner", enabled=False)
    assert own.status_code == 200 and own.json()["title"] == "Renamed by its owner"
    assert own.json()["enabled"] is False and own.json()["next_delivery_at"] is None
    denied = patch("sam", maintainers, title="Hijacked")
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "access_denied"
    assert denied.json()["error"]["message"].startswith(
        f"'sam' is Guest (10) on project {PROJECT}; changing another member's subscription needs Maintainer (40) "
        "or higher.")
    assert patch("rita", guests, title="Reporter").status_code == 403
    assert patch("mia", guests, title="Fixed by a maintainer").json()["title"] == "Fixed by a maintainer"
    for who in ("otto", "stranger"):  # not members: the project is not revealed
        assert patch(who, guests, title="x").status_code == 404
        assert client.get(BASE, headers=as_(data, who)).status_code == 404
        assert client.post(BASE, headers=as_(data, who), json=body(data)).status_code == 404
    assert client.get(BASE).status_code == 401
    assert client.patch(f"{BASE}/{guests['id']}", json={"title": "x"}).status_code == 401
    assert client.get(BASE, headers={"Authorization": "Bearer epat_nope"}).json()["error"]["code"] == "unauthorized"
    # The guest may read everyone's, but only delete their own.
    assert client.get(f"{BASE}/{maintainers['id']}", headers=as_(data, "sam")).status_code == 200
    assert client.delete(f"{BASE}/{maintainers['id']}", headers=as_(data, "sam")).status_code == 403
    deleted = client.delete(f"{BASE}/{guests['id']}", headers=as_(data, "sam"))
    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get(f"{BASE}/{guests['id']}", headers=as_(data, "sam")).status_code == 404
    assert client.delete(f"{BASE}/{maintainers['id']}", headers=as_(data, "mia")).status_code == 204
    assert client.delete(f"{BASE}/{maintainers['id']}", headers=as_(data, "mia")).status_code == 404


def test_targets_and_subscriptions_of_another_project_are_not_found(client, data):
    response = client.post(BASE, headers=as_(data, "sam"), json=body(data, target_id=data["elsewhere"].id))
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert client.post(BASE, headers=as_(data, "sam"), json=body(
        data, resource="dashboard", target_id=data["insight"].id)).status_code == 404  # an insight, not a dashboard
    mine = subscribe(client, data)
    other = f"/api/v1/projects/{OTHER}/subscriptions/{mine['id']}"
    assert client.get(other, headers=as_(data, "otto")).status_code == 404
    assert client.delete(other, headers=as_(data, "otto")).status_code == 404
    assert client.get(f"{BASE}/{mine['id']}", headers=as_(data, "sam")).status_code == 200
    assert client.get("/api/v1/projects/0/subscriptions", headers=as_(data, "sam")).status_code == 422


def test_deliveries_with_an_outcome_per_destination(client, data):
    created = subscribe(client, data, destinations=[{"kind": "email", "email": "ann@example.com"},
                                                    {"kind": "slack", "workspace": "acme", "channel": "#growth"}])
    url = f"{BASE}/{created['id']}/deliveries"
    assert client.get(url, headers=as_(data, "rita")).json() == {"data": []}
    # (`plan(now)` would plan every enabled subscription in the shared test database; this one slot is ours.)
    book: SubscriptionStore = data["subscriptions"]
    subscription = book.get(PROJECT, created["id"])
    delivery = book.request_delivery(subscription, FIRST_SLOT)
    assert delivery.id == f"{created['id']}-20300107T0800Z"
    book.start(delivery.id, "run-1")
    email, slack = (d["id"] for d in created["destinations"])
    book.record_outcome(delivery.id, slack, ok=False, detail=None, error="channel_not_found", attempts=3)
    book.record_outcome(delivery.id, email, ok=True, detail="sendgrid 202", error=None, attempts=1)
    book.set_state(delivery.id, DeliveryState.PARTIALLY_FAILED, error="1 of 2 destinations failed")
    later = book.request_delivery(subscription, datetime(2030, 1, 14, 8, tzinfo=UTC))

    got = client.get(url, headers=as_(data, "sam")).json()["data"]
    assert [d["id"] for d in got] == [later.id, delivery.id]  # the newest slot first
    assert got[0]["state"] == "queued" and got[0]["destinations"] == []
    finished = got[1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", finished["finished_at"])
    assert finished == {
        "id": delivery.id, "subscription_id": created["id"], "scheduled_for": "2030-01-07T08:00:00Z",
        "state": "partially_failed", "run_id": "run-1", "error": "1 of 2 destinations failed",
        "created_at": finished["created_at"], "finished_at": finished["finished_at"],
        "destinations": [
            {"destination_id": email, "destination": created["destinations"][0], "state": "succeeded",
             "detail": "sendgrid 202", "error": None, "attempts": 1},
            {"destination_id": slack, "destination": created["destinations"][1], "state": "failed", "detail": None,
             "error": "channel_not_found", "attempts": 3},
        ],
    }
    assert [d["id"] for d in client.get(f"{url}?limit=1", headers=as_(data, "sam")).json()["data"]] == [later.id]
    assert client.get(url, headers=as_(data, "stranger")).status_code == 404
    assert client.get(f"{BASE}/nope/deliveries", headers=as_(data, "sam")).status_code == 404


def test_get_shows_a_form_and_post_unsubscribes_that_address_only(client, data, settings):
    created = subscribe(client, data, title='Growth <script>alert("x")</script> & co', destinations=[
        {"kind": "email", "email": "Ann@Example.com"}, {"kind": "email", "email": "bob@example.com"}])
    url = link(data, created["id"], "ann@example.com")
    page = client.get(url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "form-action 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text and "Growth &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in page.text
    assert f'<form method="post" action="{url}"><button type="submit">Unsubscribe</button></form>' in page.text
    assert 'Stop sending “Growth <script>alert("x")</script> & co” to ann@example.com?' in \
        text_of(page.text).replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    client.get(url)  # a mail scanner opening the link again
    assert client.head(url).status_code == 200  # or checking it
    still = client.get(f"{BASE}/{created['id']}", headers=as_(data, "sam")).json()
    assert [d["enabled"] for d in still["destinations"]] == [True, True] and still["enabled"] is True

    done = client.post(url)
    assert done.status_code == 200 and "form-action 'self'" in done.headers["content-security-policy"]
    assert "You will no longer receive “Growth &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co” at " \
           "ann@example.com." in done.text
    assert "disabled" not in done.text and "<form" not in done.text
    after = client.get(f"{BASE}/{created['id']}", headers=as_(data, "sam")).json()
    assert sorted((d["email"], d["enabled"], d["disabled_reason"]) for d in after["destinations"]) == [
        ("Ann@Example.com", False, "unsubscribed by the recipient"), ("bob@example.com", True, None)]
    assert after["enabled"] is True and after["disabled_reason"] is None

    again = client.post(url)  # twice is fine
    assert again.status_code == 200 and "already unsubscribed" in again.text
    assert "already unsubscribed" in client.get(url).text and "<form" not in client.get(url).text


def test_one_click_unsubscribe(client, data, settings):
    created = subscribe(client, data, destinations=[{"kind": "email", "email": "ann@example.com"},
                                                    {"kind": "slack", "workspace": "acme", "channel": "#growth"}])
    response = client.post(link(data, created["id"], "ann@example.com"), content=b"List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert "You will no longer receive “Weekly sign-ups” at ann@example.com." in response.text
    after = client.get(f"{BASE}/{created['id']}", headers=as_(data, "sam")).json()
    # The Slack channel still receives it: the subscription stays enabled.
    assert [(d["kind"], d["enabled"]) for d in after["destinations"]] == [("email", False), ("slack", True)]
    assert after["enabled"] is True and after["next_delivery_at"] == "2030-01-07T08:00:00Z"
    assert "disabled" not in response.text


def test_the_last_address_unsubscribing_disables_the_subscription(client, data, settings):
    created = subscribe(client, data, destinations=[{"kind": "email", "email": "ann@example.com"},
                                                    {"kind": "email", "email": "bob@example.com"}])
    assert client.post(link(data, created["id"], "bob@example.com")).status_code == 200
    last = client.post(link(data, created["id"], "ann@example.com"))
    assert last.status_code == 200
    assert text_of(last.text).endswith("You will no longer receive “Weekly sign-ups” at ann@example.com. "
                                       "That was its last recipient, so the subscription is now disabled.")
    after = client.get(f"{BASE}/{created['id']}", headers=as_(data, "sam")).json()
    assert after["enabled"] is False and after["next_delivery_at"] is None
    assert after["disabled_reason"] == "Every recipient unsubscribed; add destinations and enable it to resume."


def test_tampered_revoked_and_deleted_links(client, data, settings):
    created = subscribe(client, data, who="mia", destinations=[{"kind": "email", "email": "ann@example.com"},
                                                               {"kind": "email", "email": "bob@example.com"}])
    url = link(data, created["id"], "ann@example.com")
    token = url.removeprefix("/unsubscribe/")
    changed = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (changed, token[:-2], "A" * 32, "hello", "v1.a.b"):
        for method in (client.get, client.post):
            page = method(f"/unsubscribe/{bad}")
            assert page.status_code == 400, bad
            assert "This unsubscribe link is invalid." in page.text and "<form" not in page.text
    assert client.get(f"{BASE}/{created['id']}", headers=as_(data, "mia")).json()["destinations"][0]["enabled"]

    # Only its owner or a Maintainer+ revokes the links; the guest is neither.
    revoke = f"{BASE}/{created['id']}/unsubscribe_links/revoke"
    assert client.post(revoke, headers=as_(data, "sam")).status_code == 403
    revoked = client.post(revoke, headers=as_(data, "mia"))
    assert revoked.status_code == 200 and revoked.json()["unsubscribe_version"] == 2
    assert revoked.json()["id"] == created["id"]
    for method in (client.get, client.post):
        gone = method(url)
        assert gone.status_code == 410
        assert "This link was revoked; use the link in the latest email." in gone.text and "<form" not in gone.text
    assert all(d["enabled"] for d in client.get(f"{BASE}/{created['id']}", headers=as_(data, "mia")).json()["destinations"])
    fresh = link(data, created["id"], "ann@example.com", version=2)
    assert client.get(fresh).status_code == 200 and client.post(fresh).status_code == 200

    assert client.delete(f"{BASE}/{created['id']}", headers=as_(data, "mia")).status_code == 204
    for method in (client.get, client.post):
        nothing = method(link(data, created["id"], "bob@example.com", version=2))
        assert nothing.status_code == 200
        assert "There is nothing to unsubscribe from." in nothing.text and "<form" not in nothing.text


def test_subscriptions_from_the_cli(settings, client, data, monkeypatch):
    from click.testing import CliRunner

    from export_pipeline.cli import main as cli

    monkeypatch.setenv("EXPORT_PIPELINE_HOME", str(settings.home))
    runner = CliRunner()
    project = ["--project-id", str(PROJECT)]

    def run(*args: str):
        return runner.invoke(cli, ["subscriptions", *args])

    created = run("create", *project, "--user", "rita", "--resource", "dashboard", "--target-id",
                  data["dashboard"].id, "--title", "From the CLI", "--message", "Hello",
                  "--schedule", json.dumps(WEEKLY), "--email", "ann@example.com", "--email", "bob@example.com",
                  "--slack", "acme:#growth")
    assert created.exit_code == 0, created.output
    made = json.loads(created.output)
    assert (made["created_by"], made["resource"], made["title"], made["message"]) == (
        "rita", "dashboard", "From the CLI", "Hello")
    assert made["next_delivery_at"] == "2030-01-07T08:00:00Z"
    # (destinations are listed by kind, then id)
    assert sorted(d.get("email") or f"{d['workspace']} {d['channel']}" for d in made["destinations"]) == [
        "acme #growth", "ann@example.com", "bob@example.com"]
    assert [d["kind"] for d in made["destinations"]] == ["email", "email", "slack"]
    assert client.get(f"{BASE}/{made['id']}", headers=as_(data, "sam")).json() == made

    listed = run("list", *project)
    assert listed.exit_code == 0 and made["id"] in [s["id"] for s in json.loads(listed.output)["data"]]
    data["subscriptions"].request_delivery(data["subscriptions"].get(PROJECT, made["id"]), FIRST_SLOT)
    shown = run("show", *project, made["id"])
    assert shown.exit_code == 0, shown.output
    details = json.loads(shown.output)
    assert details["id"] == made["id"] and [(d["scheduled_for"], d["state"], d["destinations"])
                                            for d in details["deliveries"]] == [("2030-01-07T08:00:00Z", "queued", [])]

    disabled = run("disable", *project, made["id"])
    assert disabled.exit_code == 0 and json.loads(disabled.output)["enabled"] is False
    assert client.get(f"{BASE}/{made['id']}", headers=as_(data, "sam")).json()["enabled"] is False
    enabled = run("enable", *project, made["id"])
    assert enabled.exit_code == 0 and json.loads(enabled.output)["enabled"] is True

    refused = run("create", *project, "--user", "otto", "--resource", "insight", "--target-id", data["insight"].id,
                  "--title", "x", "--schedule", json.dumps(WEEKLY), "--email", "ann@example.com")
    assert refused.exit_code == 2 and "is not a member of project" in refused.output
    bad_slack = run("create", *project, "--user", "rita", "--resource", "insight", "--target-id",
                    data["insight"].id, "--title", "x", "--schedule", json.dumps(WEEKLY), "--slack", "acme")
    assert bad_slack.exit_code == 2 and "WORKSPACE:CHANNEL" in bad_slack.output
    nowhere = run("create", *project, "--user", "rita", "--resource", "insight", "--target-id", data["insight"].id,
                  "--title", "x", "--schedule", json.dumps(WEEKLY))
    assert nowhere.exit_code == 2 and "at least one destination" in nowhere.output
    bad_zone = run("create", *project, "--user", "rita", "--resource", "insight", "--target-id", data["insight"].id,
                   "--title", "x", "--schedule", json.dumps({**WEEKLY, "timezone": "Nowhere/Land"}),
                   "--email", "ann@example.com")
    assert bad_zone.exit_code == 2 and "unknown time zone 'Nowhere/Land'" in bad_zone.output
    elsewhere = run("create", *project, "--user", "rita", "--resource", "insight", "--target-id",
                    data["elsewhere"].id, "--title", "x", "--schedule", json.dumps(WEEKLY), "--email", "a@example.com")
    assert elsewhere.exit_code == 2 and "not found" in elsewhere.output  # an unknown id is invalid input

    deleted = run("delete", *project, made["id"])
    assert deleted.exit_code == 0 and json.loads(deleted.output) == {"id": made["id"], "deleted": True}
    assert client.get(f"{BASE}/{made['id']}", headers=as_(data, "sam")).status_code == 404
    assert run("show", *project, made["id"]).exit_code == 2
