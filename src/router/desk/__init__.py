"""Support-desk features (issue 17): search, tags, canned replies, reports, read audit."""
