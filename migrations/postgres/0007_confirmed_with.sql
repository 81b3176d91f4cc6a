-- How a subscription was confirmed: sns_api (ConfirmSubscription with
-- AuthenticateOnUnsubscribe: only the topic's owner can unsubscribe it) or subscribe_url
-- (a visit of its SubscribeURL: anyone holding its ARN can). NULL before the first
-- confirmation, and for subscriptions confirmed before this column existed.
ALTER TABLE sns_subscriptions ADD COLUMN confirmed_with TEXT;
