"""Redis: every key and Lua script of vpbx (docs/redis-keys.md)."""
