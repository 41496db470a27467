"""Recommendation: interactions (and optional item texts) -> a tuned recommender -> top-k with reasons.

    data       reading interactions and item texts; MovieLens-100k from the recbole package
    models     pop, itemknn, als, bpr (implicit), ease, content (Loom's encoders), hybrid
    protocol   the stated, seeded evaluation protocol and ranking metrics
    train      small-grid tuning on validation, protocol-stamped evaluation with baselines
    store      recommenders/NAME on disk
    service    for_user / similar with cold-start routes and explanations (CLI, HTTP, web page)
"""
