"""The live path: the WebSocket consumer and its routing, event streams (replay, live,
gap fill), publishing committed events, shared execution, the subscription field."""
