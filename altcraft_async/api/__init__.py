"""One module per API area: the endpoint specs and the async methods of each namespace."""
