"""Who may do what, and how they are reached: members, users, tokens."""

from __future__ import annotations

import click

from export_pipeline.accounts.emails import get_user_email, is_email, set_user_email
from export_pipeline.accounts.roles import Role, add_member, list_members, remove_member
from export_pipeline.accounts.tokens import create_token, list_tokens, revoke_token
from export_pipeline.cli.common import app_database, echo_rows, project_option
from export_pipeline.errors import NotFound


@click.group()
def members() -> None:
    """Project members and their GitLab access levels."""


@members.command("add")
@project_option
@click.option("--user", required=True)
@click.option("--role", type=click.Choice([role.name.lower() for role in Role], case_sensitive=False), required=True)
def members_add(project_id: int, user: str, role: str) -> None:
    """Give a user a role on a project (replacing the one they had)."""
    parsed = Role.parse(role)
    add_member(app_database(), project_id, user, parsed)
    click.echo(f"{user} is now {parsed.label} on project {project_id}")


@members.command("remove")
@project_option
@click.option("--user", required=True)
def members_remove(project_id: int, user: str) -> None:
    """Take a user off a project."""
    remove_member(app_database(), project_id, user)
    click.echo(f"{user} removed from project {project_id}")


@members.command("list")
@project_option
def members_list(project_id: int) -> None:
    """A project's members, one a line: user, role, access level."""
    echo_rows((user, role.name.lower(), int(role)) for user, role in list_members(app_database(), project_id))


@click.group()
def users() -> None:
    """Users' email addresses, where finished-export emails go."""


@users.command("set-email")
@click.option("--user", required=True)
@click.option("--email", required=True)
def users_set_email(user: str, email: str) -> None:
    """Email this user's finished exports to this address.

    A request that names its own address (--notify-email) goes there instead."""
    stored = set_user_email(app_database(), user, email)
    click.echo(f"{stored.user}\t{stored.email}")


@users.command("show")
@click.option("--user", required=True)
def users_show(user: str) -> None:
    """Where this user's finished-export emails go."""
    stored = get_user_email(app_database(), user)
    if stored is not None:
        click.echo(f"{stored.user}\t{stored.email}\tset {stored.updated_at:%Y-%m-%dT%H:%M:%SZ}")
    elif is_email(user):
        click.echo(f"{user}\t{user}\tthe user name (no address stored)")
    else:
        raise NotFound(
            f"No email address for {user!r}: their exports send no email unless a request names one.",
            hint=f"export-pipeline users set-email --user {user} --email ADDRESS",
        )


@click.group()
def tokens() -> None:
    """Personal access tokens for the HTTP API."""


@tokens.command("create")
@click.option("--user", required=True)
@click.option("--name", default="cli", show_default=True)
@click.option("--expires-in-days", type=click.IntRange(min=1), default=90, show_default=True)
def tokens_create(user: str, name: str, expires_in_days: int) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    token, info = create_token(app_database(), user, name=name, expires_in_days=expires_in_days)
    click.echo(token)
    click.echo(f"token {info.id} for {info.user}, expires {info.expires_at:%Y-%m-%d}; it is not shown again", err=True)


@tokens.command("list")
@click.option("--user", required=True)
def tokens_list(user: str) -> None:
    """A user's tokens, revoked ones too (never the secret)."""
    echo_rows((info.id, info.name, "revoked" if info.revoked_at else "active", f"expires {info.expires_at or 'never'}")
              for info in list_tokens(app_database(), user))


@tokens.command("revoke")
@click.argument("token_id")
def tokens_revoke(token_id: str) -> None:
    """Stop a token from working (at once)."""
    revoke_token(app_database(), token_id)
    click.echo(f"token {token_id} revoked")


COMMANDS = [members, users, tokens]
