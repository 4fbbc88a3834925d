"""What every HTTP entrypoint shares (the write side's routes, the read side's, the audit's,
the console): API keys and roles (`auth`), the route guard (`guard`), the ids, positions
and times the API takes (`params`), problem documents (`problems`), orjson responses
(`responses`), and the container's parts as FastAPI dependencies (`dependencies`).
"""
