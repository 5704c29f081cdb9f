-- The default sellers query. Parameter: $1, a text[] of seller ids.
-- Columns, in this order:
--   seller_id, name, entity_type, country, infinia_seller_id, wechat_sub_mchid
SELECT seller_id, name, entity_type, country, infinia_seller_id, wechat_sub_mchid
FROM sellers
WHERE seller_id = ANY ($1)
