"""Operations logic: incidents, routing rules, SLA, audit, API keys and roles, the live hub."""
