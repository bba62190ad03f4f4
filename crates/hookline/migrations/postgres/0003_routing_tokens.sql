-- Delivery affinity (CONTRACT.md §3.6): the routing token a receiver returned in its 2xx answer,
-- per subscription and chat, echoed on later deliveries for that chat.
CREATE TABLE routing_tokens (
    subscription_id TEXT NOT NULL,
    chat_id         TEXT NOT NULL,
    token           TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, chat_id)
);
