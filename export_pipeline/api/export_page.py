"""The export page: `/projects/{project_id}/export`, a button and a dialog that call the HTTP API.

Plain HTML and JavaScript served by the API itself (no CDN: deployments may be offline). The page asks
for a personal access token once per browser tab (sessionStorage); the host product would inject it.
"""

import html
import json

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from export_pipeline.accounts.emails import recipient_for
from export_pipeline.api.dependencies import TOKEN_COOKIE, CurrentCaller, Deps, ProjectId
from export_pipeline.api.examples import examples
from export_pipeline.api.examples.exports import CURRENT_USER
from export_pipeline.api.responses import error_responses
from export_pipeline.engine.resources import Resource

router = APIRouter()
# What one row of each resource is, for the page's labels; null where the files are not rows to count.
RESOURCE_NOUNS = json.dumps({resource.value: resource.noun if resource.rows else None for resource in Resource})

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Export events · project {project_id}</title>
<style>
  body {{ font: 15px/1.5 system-ui, sans-serif; margin: 2rem; color: #1f1f1f; }}
  button {{ font: inherit; padding: .45rem .9rem; border-radius: 6px; border: 1px solid #888; cursor: pointer; }}
  button.primary {{ background: #1f6feb; color: #fff; border-color: #1f6feb; }}
  dialog {{ border: 1px solid #ccc; border-radius: 8px; padding: 1.5rem; min-width: 22rem; }}
  label {{ display: block; margin: .6rem 0 .2rem; }}
  input, select {{ font: inherit; width: 100%; box-sizing: border-box; padding: .3rem; }}
  #status {{ margin-top: 1.2rem; }}
  progress {{ width: 100%; max-width: 28rem; height: .8rem; }}
  .error {{ color: #b42318; }}
  .state {{ display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .85em; background: #eaeef2; }}
  .state.succeeded {{ background: #dafbe1; }} .state.failed {{ background: #ffebe9; }}
  .state.running {{ background: #ddf4ff; }}
  #recent {{ padding-left: 1.2rem; }}
</style>
</head>
<body>
<h1>Export events</h1>
<p>Project {project_id}: download the project's raw events as files.</p>
<form id="token-form" hidden>
  <label for="token">Personal access token</label>
  <input id="token" type="password" autocomplete="off">
  <button type="submit">Use token</button>
</form>
<button id="open-export" class="primary" hidden>Export events</button>
<dialog id="export-dialog">
  <form id="export-form" method="dialog">
    <h2>Export events</h2>
    <label for="format">Format</label>
    <select id="format">
      <option value="ndjson">NDJSON (one event per line)</option>
      <option value="json">JSON</option>
      <option value="csv">CSV</option>
      <option value="parquet">Parquet</option>
    </select>
    <label for="compression">Compression</label>
    <select id="compression">
      <option value="">Default (gzip; Parquet: zstd inside the file)</option>
      <option value="gzip">gzip</option>
      <option value="zstd">zstd</option>
      <option value="none">none</option>
    </select>
    <label for="date-from">From (inclusive)</label>
    <input id="date-from" type="date">
    <label for="date-to">To (inclusive)</label>
    <input id="date-to" type="date">
    <label for="email">Email me the link</label>
    <input id="email" type="email">
    <p>
      <button id="submit-export" class="primary" value="submit">Start export</button>
      <button value="cancel" formnovalidate>Cancel</button>
    </p>
  </form>
</dialog>
<div id="status" role="status" aria-live="polite"></div>
<progress id="progress" hidden></progress>
<h2>Recent exports</h2>
<ul id="recent"><li>None yet.</li></ul>
<script>
const projectId = {project_id};
const api = (path, options = {{}}) => fetch(path, {{
  ...options,
  headers: {{"Authorization": "Bearer " + sessionStorage.getItem("export-token"),
             "Content-Type": "application/json"}},
}});
const show = (text, isError = false) => {{
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
  document.getElementById("progress").hidden = true;
}};
const count = (n) => n.toLocaleString("en-US");
// What an export holds, by its resource: "2,510 events", "cohort: 40 persons", "dashboard" (an insight's or
// a dashboard's files are tables or an image: no rows to count).
const nouns = {nouns};
const holds = (export_) => {{
  const noun = nouns[export_.resource];
  if (noun === null) return export_.resource;
  const counted = `${{count(export_.row_count)}} ${{noun}}`;
  return noun === export_.resource ? counted : `${{export_.resource}}: ${{counted}}`;
}};

// The project's latest exports, newest first; a click follows one.
async function listRecent() {{
  const response = await api(`/api/v1/projects/${{projectId}}/exports?limit=10`);
  if (!response.ok) return;
  const {{data}} = await response.json();
  const list = document.getElementById("recent");
  list.replaceChildren();
  if (!data.length) list.append(Object.assign(document.createElement("li"), {{textContent: "None yet."}}));
  for (const export_ of data) {{
    const item = document.createElement("li");
    const link = Object.assign(document.createElement("a"), {{href: "#", textContent: export_.export_id}});
    link.addEventListener("click", (event) => {{ event.preventDefault(); follow(export_.url); }});
    const state = Object.assign(document.createElement("span"),
                                {{className: `state ${{export_.status}}`, textContent: export_.status}});
    item.dataset.exportId = export_.export_id;
    item.append(link, ` · ${{export_.format}} · `, state,
                ` · ${{holds(export_)}} · ${{new Date(export_.created_at).toUTCString()}}`);
    list.append(item);
  }}
}}

// Download links carry no header: the token rides a cookie scoped to this project's exports, sent only by
// same-site requests (SameSite=Strict), so the browser saves the file itself instead of page memory.
function shareTokenWithLinks(token) {{
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `{cookie}=${{encodeURIComponent(token)}}; path=/api/v1/projects/${{projectId}}/exports; ` +
                    `SameSite=Strict${{secure}}`;
}}

async function start() {{
  if (!sessionStorage.getItem("export-token")) {{
    document.getElementById("token-form").hidden = false;
    return;
  }}
  shareTokenWithLinks(sessionStorage.getItem("export-token"));
  const me = await api("/api/v1/user");
  if (!me.ok) {{
    sessionStorage.removeItem("export-token");
    document.getElementById("token-form").hidden = false;
    return show("That token was not accepted.", true);
  }}
  document.getElementById("email").value = (await me.json()).email || "";
  document.getElementById("open-export").hidden = false;
  listRecent();
}}

document.getElementById("token-form").addEventListener("submit", (event) => {{
  event.preventDefault();
  sessionStorage.setItem("export-token", document.getElementById("token").value.trim());
  document.getElementById("token-form").hidden = true;
  start();
}});

document.getElementById("open-export").addEventListener("click", () => {{
  document.getElementById("export-dialog").showModal();
}});

document.getElementById("export-dialog").addEventListener("close", async () => {{
  if (document.getElementById("export-dialog").returnValue !== "submit") return;
  const body = {{format: document.getElementById("format").value}};
  const compression = document.getElementById("compression").value;
  if (compression) body.compression = compression;
  const from = document.getElementById("date-from").value, to = document.getElementById("date-to").value;
  const email = document.getElementById("email").value.trim();
  if (from) body.date_from = from;
  if (to) body.date_to = to;
  if (email) body.notify_email = email;
  const response = await api(`/api/v1/projects/${{projectId}}/exports`, {{method: "POST", body: JSON.stringify(body)}});
  const answer = await response.json();
  if (!response.ok) return show([answer.error.message, answer.error.hint].filter(Boolean).join(" "), true);
  listRecent();
  follow(answer.url);
}});

async function follow(url) {{
  const export_ = await (await api(url)).json();
  if (export_.status !== "queued" && export_.status !== "running") listRecent();
  if (export_.status === "succeeded") {{
    const status = document.getElementById("status");
    status.className = "";
    document.getElementById("progress").hidden = true;
    status.textContent = `Export ${{export_.export_id}} is ready: ${{holds(export_)}}. `;
    for (const file of export_.files) {{
      const link = Object.assign(document.createElement("a"), {{
        href: file.url, download: file.download_name, className: "download", textContent: `Download ${{file.name}}`}});
      status.append(link, " ");
    }}
    status.append(`Links expire ${{new Date(export_.expires_at).toUTCString()}}.`);
    return;
  }}
  if (export_.status !== "queued" && export_.status !== "running") {{
    const why = export_.error ? export_.error.message : (export_.status === "expired" ? "its files were deleted." : "");
    return show(`Export ${{export_.export_id}} ${{export_.status}}: ${{why}}`, true);
  }}
  const total = export_.row_total;
  const doing = export_.status === "queued"
    ? "is queued: it starts when the engine is free."
    : `is running: ${{count(export_.row_count)}}${{total === null ? "" : ` of ${{count(total)}}`}} ` +
      `${{nouns[export_.resource] ?? "rows"}} written…`;
  show(`Export ${{export_.export_id}} ${{doing}}` + (export_.hint ? ` ${{export_.hint}}` : ""));
  const progress = document.getElementById("progress");
  progress.hidden = false;
  if (total) {{  // counted by the run: a bar that fills; until then an indeterminate one
    progress.max = total;
    progress.value = export_.row_count;
  }} else {{
    progress.removeAttribute("value");
  }}
  setTimeout(() => follow(url), 1000);
}}

start();
</script>
</body>
</html>
"""


class CurrentUser(BaseModel):
    user: str
    email: str | None


@router.get("/projects/{project_id}/export", response_class=HTMLResponse, include_in_schema=False)
def export_page(project_id: ProjectId) -> str:
    return PAGE.format(project_id=html.escape(str(project_id)), cookie=TOKEN_COOKIE, nouns=RESOURCE_NOUNS)


@router.get("/api/v1/user", tags=["user"], responses=error_responses(401), summary="Who am I",
            openapi_extra=examples(response=CURRENT_USER))
def get_current_user(who: CurrentCaller, deps: Deps) -> CurrentUser:
    """Who the token belongs to, and the address export emails go to (the page prefills it)."""
    recipient = recipient_for(deps.engine, who.user, None)
    return CurrentUser(user=who.user, email=recipient.email if recipient else None)
