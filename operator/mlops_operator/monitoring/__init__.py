"""Monitoring: aggregate (metrics text → values), judge (verdicts), remediate (budgets,
cron), measure (scrapes, PromQL), the daemon."""
