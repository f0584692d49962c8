"""One router per API resource: audio, models, jobs, and the operational endpoints."""
