"""The staff console: a static page and plain JavaScript over the agent API, with e-mail and
password sign-in (argon2id), server-side cookie sessions and CSRF-protected writes.

The console reads and writes only through `/api/v1` (the same authorization path as bearer
tokens); `router.console.api` adds the few read models the API lacked (a conversation's
activity, open crises, the wallboard, invitations).
"""
