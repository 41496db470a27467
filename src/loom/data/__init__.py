"""Raw text -> cleaned, deduplicated documents -> token shards."""
