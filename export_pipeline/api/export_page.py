"""The export page: `/projects/{project_id}/export`, a button and a dialog that call the HTTP API.

Plain HTML and JavaScript served by the API itself (no CDN: deployments may be offline). The page asks
for a personal access token once per browser tab (sessionStorage); the host product would inject it.
"""

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from export_pipeline.accounts.emails import recipient_for
from export_pipeline.api.dependencies import CurrentCaller, Deps, ProjectId
from export_pipeline.api.responses import error_responses

router = APIRouter()

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
  .error {{ color: #b42318; }}
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
}};

async function start() {{
  if (!sessionStorage.getItem("export-token")) {{
    document.getElementById("token-form").hidden = false;
    return;
  }}
  const me = await api("/api/v1/user");
  if (!me.ok) {{
    sessionStorage.removeItem("export-token");
    document.getElementById("token-form").hidden = false;
    return show("That token was not accepted.", true);
  }}
  document.getElementById("email").value = (await me.json()).email || "";
  document.getElementById("open-export").hidden = false;
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
  const from = document.getElementById("date-from").value, to = document.getElementById("date-to").value;
  const email = document.getElementById("email").value.trim();
  if (from) body.date_from = from;
  if (to) body.date_to = to;
  if (email) body.notify_email = email;
  const response = await api(`/api/v1/projects/${{projectId}}/exports`, {{method: "POST", body: JSON.stringify(body)}});
  const answer = await response.json();
  if (!response.ok) return show([answer.error.message, answer.error.hint].filter(Boolean).join(" "), true);
  follow(answer.url);
}});

async function follow(url) {{
  const export_ = await (await api(url)).json();
  if (export_.status === "succeeded") {{
    const status = document.getElementById("status");
    status.className = "";
    status.textContent = `Export ${{export_.export_id}} is ready: ${{export_.row_count.toLocaleString("en-US")}} events. `;
    for (const file of export_.files) {{
      const link = document.createElement("a");
      link.href = "#";
      link.className = "download";
      link.dataset.url = file.url;
      link.textContent = `Download ${{file.name}}`;
      link.addEventListener("click", (event) => {{ event.preventDefault(); download(file); }});
      status.append(link, " ");
    }}
    status.append(`Links expire ${{new Date(export_.expires_at).toUTCString()}}.`);
    return;
  }}
  if (export_.status === "failed" || export_.status === "canceled") {{
    return show(`Export ${{export_.export_id}} ${{export_.status}}: ${{export_.error ? export_.error.message : ""}}`, true);
  }}
  show(`Export ${{export_.export_id}} is ${{export_.status}}: ${{export_.row_count.toLocaleString("en-US")}} events so far…` +
       (export_.hint ? ` ${{export_.hint}}` : ""));
  setTimeout(() => follow(url), 1000);
}}

async function download(file) {{
  // The download needs the token header, so fetch it and hand the browser a blob.
  const response = await api(file.url);
  if (response.redirected || !response.ok) return (window.location = response.url);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = file.download_name;
  link.click();
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
    return PAGE.format(project_id=html.escape(str(project_id)))


@router.get("/api/v1/user", tags=["user"], responses=error_responses(401))
def current_user(who: CurrentCaller, deps: Deps) -> CurrentUser:
    """Who the token belongs to, and the address export emails go to (the page prefills it)."""
    recipient = recipient_for(deps.engine, who.user, None)
    return CurrentUser(user=who.user, email=recipient.email if recipient else None)
