"""The `app` channel: a mobile or web app's back-end posts customer messages
(`routes`, `POST /api/v1/inbound`) and receives replies on its signed callback (`adapter`)."""
