def merge_and_score(plan, cfg, settings, result, say):
    return 0
