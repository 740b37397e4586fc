-- The type recsys reads a source column as: its declared type with every domain unwrapped (a
-- domain over date reads as a date), or NULL when the column does not exist. The SQL twin of
-- getBaseType() that src/pg/source_reader.cpp applies; data checks and drift use it.
CREATE FUNCTION recsys.column_base_type(relation regclass, column_name text) RETURNS oid
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    typ      oid;
    typ_kind "char";
    base     oid;
BEGIN
    SELECT a.atttypid INTO base FROM pg_attribute a
     WHERE a.attrelid = relation AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped;
    LOOP
        EXIT WHEN base IS NULL;
        SELECT t.typtype, t.typbasetype INTO typ_kind, typ FROM pg_type t WHERE t.oid = base;
        EXIT WHEN typ_kind <> 'd';
        base := typ;
    END LOOP;
    RETURN base;
END
$$;
COMMENT ON FUNCTION recsys.column_base_type(regclass, text) IS 'A column''s type with domains unwrapped, or NULL when the relation has no such column';
GRANT EXECUTE ON FUNCTION recsys.column_base_type(regclass, text) TO recsys_admin;
