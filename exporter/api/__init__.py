"""The API's edge: everything that knows how Northflank's billing API answers.

``client`` (the HTTP funnel) -> ``billing`` (the endpoints: parameters, paging, which
contract an answer is in) -> ``legacy`` / ``current`` (one reader per contract, sharing
``read``) -> ``model`` (the one internal model, amounts in major units). ``contract``
tells the contracts apart and knows their parameters, ``paging`` their page schemes,
``errors`` every way a request fails. Nothing outside this package knows which contract
an answer was in.
"""
