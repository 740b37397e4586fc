#!/usr/bin/env bash
# An upgraded installation must be indistinguishable from a fresh one. In one database
# CREATE EXTENSION recsys VERSION '0.1.0' (with some data: models, recommendations, states),
# then ALTER EXTENSION recsys UPDATE; in another CREATE EXTENSION recsys. Both databases then
# describe everything the extension owns, canonically: every member object (pg_depend deptype
# 'e'); functions (identity, arguments and defaults, result, language, body or C symbol and
# library, volatility, strictness, parallel safety, security definer, SET options, cost, ACL,
# owner, comment); tables, views and sequences (columns with types, defaults, NOT NULL, ACLs and
# comments; constraints; indexes; triggers; policies; rules; view definitions; sequence
# parameters and owning column; relation ACL, options, owner, comment); types; the extension's
# configuration tables and their conditions; the schema's owner, ACL, comment and default
# privileges; pg_init_privs of every member. The two descriptions must be identical (a diff is
# printed otherwise). Also: the installed default version is extension/recsys.control's
# default_version, there is an update path from 0.1.0 to it, the installed scripts are the
# repository's, and the 0.1.0 data survives the update and still scores.
#
# It passes with 0.1.0 alone (the update is then a no-op). Environment: PGHOST/PGPORT/PGUSER (it
# creates and drops two databases); RECSYS_EXTENSION (default recsys), RECSYS_CONTROL (default
# extension/recsys.control) and RECSYS_FROM_VERSION (default 0.1.0) let it check a scratch copy
# of the extension installed under another name. Prints "ok - ..." / "not ok - ..." lines and
# "N passed, M failed" last; exit status 1 when any check fails.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PSQL=${PSQL:-$PGBIN/psql}
ext=${RECSYS_EXTENSION:-recsys}
control=${RECSYS_CONTROL:-$root/extension/recsys.control}
from=${RECSYS_FROM_VERSION:-0.1.0}
upgraded=recsys_upgrade_updated_$$
fresh=recsys_upgrade_fresh_$$
tmp=$(mktemp -d)
drop_databases() {
    "$PSQL" -XAtq -d postgres -c "DROP DATABASE IF EXISTS $upgraded" -c "DROP DATABASE IF EXISTS $fresh" >/dev/null 2>&1
}
cleanup() {
    drop_databases
    rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }
q() { "$PSQL" -XAtq -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }  # q DB SQL
check() {  # check DESCRIPTION DB SQL-returning-boolean
    local got
    got=$(q "$2" "$3" 2>&1)
    if [ "$got" = t ]; then ok "$1"; else not_ok "$1 (got: $got)"; fi
}

started=$(date +%s%N)
drop_databases

# The version the repository declares, and what the server has installed.
default_version=$(sed -n "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$control")
installed_default=$(q postgres "SELECT default_version FROM pg_available_extensions WHERE name = '$ext'" 2>&1)
if [ -n "$default_version" ] && [ "$installed_default" = "$default_version" ]; then
    ok "the installed default version is $(basename "$control")'s default_version ($default_version)"
else
    not_ok "the installed default version '$installed_default' is not $(basename "$control")'s default_version '$default_version'"
fi
if [ "$default_version" = "$from" ]; then
    ok "no update path needed: $from is the default version"
else
    path=$(q postgres "SELECT path FROM pg_extension_update_paths('$ext') WHERE source = '$from' AND target = '$default_version'" 2>&1)
    if [ -n "$path" ]; then ok "an update path from $from to $default_version: $path"; else not_ok "no update path from $from to $default_version"; fi
fi
# The server runs the scripts it has installed; they must be the repository's (not a stale install).
sharedir=$("$PGBIN/pg_config" --sharedir 2>/dev/null || pg_config --sharedir)
stale=""
if [ "$ext" = recsys ]; then
    for f in "$root"/sql/recsys--*.sql "$root/extension/recsys.control"; do
        cmp -s "$f" "$sharedir/extension/$(basename "$f")" || stale="$stale $(basename "$f")"
    done
    if [ -z "$stale" ]; then ok "the installed control file and scripts are the repository's"; else not_ok "installed files differ from the repository's (make install?):$stale"; fi
fi

# Database 1: the old version with data, then ALTER EXTENSION ... UPDATE.
if q postgres "CREATE DATABASE $upgraded" >"$tmp/up.log" 2>&1 &&
    "$PSQL" -Xq -v ON_ERROR_STOP=1 -d "$upgraded" >>"$tmp/up.log" 2>&1 <<SQL; then
SET client_min_messages = warning;
CREATE EXTENSION $ext VERSION '$from';
CREATE SCHEMA up;
CREATE TABLE up.snapshots AS SELECT * FROM recsys.generate_santander(100, months => 5);
SELECT recsys.register_model('up_sliding', recsys.untrained_model('up.snapshots', window_months => 3, hidden => 4));
SELECT recsys.register_model('up_from_start', recsys.untrained_model('up.snapshots', window_months => 6, hidden => 4,
                                                                     start_month => '2015-01-28'));
SELECT recsys.promote(n, 1) FROM unnest(ARRAY['up_sliding', 'up_from_start']) n;
SELECT recsys.refresh_recommendations('up_sliding');
SELECT recsys.rebuild_states('up_from_start');
CREATE TABLE up.before AS
SELECT (SELECT count(*) FROM recsys.models) AS models, (SELECT count(*) FROM recsys.model_events) AS events,
       (SELECT count(*) FROM recsys.recommendations) AS recommendations,
       (SELECT count(*) FROM recsys.customer_states) AS states,
       (SELECT recsys.score_customer(15889, 'up_sliding')) AS score;
ALTER EXTENSION $ext UPDATE;
SQL
    ok "CREATE EXTENSION $ext VERSION '$from' with data, then ALTER EXTENSION $ext UPDATE"
else
    not_ok "CREATE EXTENSION $ext VERSION '$from' and ALTER EXTENSION $ext UPDATE: $(tail -c 600 "$tmp/up.log")"
fi
# Database 2: a fresh installation of the default version.
if q postgres "CREATE DATABASE $fresh" >"$tmp/fresh.log" 2>&1 && q "$fresh" "CREATE EXTENSION $ext" >>"$tmp/fresh.log" 2>&1; then
    ok "CREATE EXTENSION $ext (the default version) in a fresh database"
else
    not_ok "CREATE EXTENSION $ext in a fresh database: $(tail -c 600 "$tmp/fresh.log")"
fi
check "the updated database runs the default version" "$upgraded" \
    "SELECT extversion = '$default_version' FROM pg_extension WHERE extname = '$ext'"
check "the fresh database runs the default version" "$fresh" \
    "SELECT extversion = '$default_version' FROM pg_extension WHERE extname = '$ext'"
check "the $from data survives the update: models, events, recommendations, states, scores" "$upgraded" \
    "SELECT b.models = (SELECT count(*) FROM recsys.models) AND b.events = (SELECT count(*) FROM recsys.model_events)
            AND b.recommendations = (SELECT count(*) FROM recsys.recommendations)
            AND b.states = (SELECT count(*) FROM recsys.customer_states)
            AND b.score = recsys.score_customer(15889, 'up_sliding') AND b.models > 0 AND b.states > 0
       FROM up.before b"

# The canonical description of everything the extension owns. One line per fact, each
# starting with the object it belongs to; sorted, so that creation order does not matter.
cat >"$tmp/describe.sql" <<'SQL'
SET search_path = pg_catalog;  -- every name prints schema-qualified
SET client_min_messages = warning;
-- An ACL as a sorted list; NULL (the built-in default) expands to what it means.
CREATE FUNCTION pg_temp.acl(acl aclitem[], kind "char", owner oid) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN coalesce(cardinality(x.a), 0) = 0 THEN '(none)' ELSE
           (SELECT string_agg(format('%s=%s%s/%s', CASE e.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(e.grantee) END,
                                     e.privilege_type, CASE WHEN e.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END,
                                     pg_get_userbyid(e.grantor)), ', '
                              ORDER BY CASE e.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(e.grantee) END,
                                       e.privilege_type, pg_get_userbyid(e.grantor))
              FROM aclexplode(x.a) e) END
      FROM (SELECT coalesce(acl, CASE WHEN kind IS NOT NULL THEN acldefault(kind, owner) END) AS a) x
$$;
CREATE TEMP TABLE facts (obj text, seq int, fact text);
CREATE TEMP TABLE members AS
SELECT d.classid, d.objid, d.objsubid, pg_describe_object(d.classid, d.objid, d.objsubid) AS obj
  FROM pg_depend d JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
 WHERE e.extname = :'ext' AND d.deptype = 'e';

-- The extension itself and its configuration tables (what pg_dump dumps the rows of).
INSERT INTO facts
SELECT 'extension ' || e.extname, 0, format('version %s, schema %s, relocatable %s, owner %s', e.extversion,
       e.extnamespace::regnamespace, e.extrelocatable, pg_get_userbyid(e.extowner))
  FROM pg_extension e WHERE e.extname = :'ext';
INSERT INTO facts
SELECT 'extension ' || e.extname, 1, format('configuration table %s, condition %L, kind %s', c.tab::regclass, c.cond,
       (SELECT relkind FROM pg_class WHERE oid = c.tab))
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) c(tab, cond) WHERE e.extname = :'ext';
INSERT INTO facts
SELECT 'extension ' || e.extname, 2, CASE WHEN e.extconfig IS NULL THEN 'no configuration tables' END
  FROM pg_extension e WHERE e.extname = :'ext' AND e.extconfig IS NULL;
-- Membership.
INSERT INTO facts SELECT 'member ' || obj, 0, pg_identify_object_as_address(classid, objid, objsubid)::text FROM members;

-- Functions and procedures.
INSERT INTO facts
SELECT 'function ' || p.oid::regprocedure, 10 + l.n::int, l.line
  FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid,
       LATERAL regexp_split_to_table(CASE WHEN p.prokind IN ('f', 'p', 'w') THEN pg_get_functiondef(p.oid)
                                          ELSE format('aggregate %s', p.oid::regprocedure) END, E'\n')
               WITH ORDINALITY l(line, n);
INSERT INTO facts
SELECT 'function ' || p.oid::regprocedure, 1,
       format('kind %s, arguments (%s), result %s, language %s, volatility %s, strict %s, parallel %s, security definer %s, '
              'leakproof %s, cost %s, rows %s, config %s, library %s, symbol %s, owner %s',
              p.prokind, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), l.lanname, p.provolatile,
              p.proisstrict, p.proparallel, p.prosecdef, p.proleakproof, p.procost, p.prorows, p.proconfig, p.probin,
              CASE WHEN l.lanname = 'c' THEN p.prosrc END, pg_get_userbyid(p.proowner))
  FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
  JOIN pg_language l ON l.oid = p.prolang;
INSERT INTO facts
SELECT 'function ' || p.oid::regprocedure, 2, 'acl ' || pg_temp.acl(p.proacl, 'f', p.proowner)
  FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid;
INSERT INTO facts
SELECT 'function ' || p.oid::regprocedure, 3, 'comment ' || coalesce(quote_literal(obj_description(p.oid, 'pg_proc')), 'none')
  FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid;

-- Relations: tables, views, materialized views, sequences, composite types, foreign tables.
CREATE TEMP TABLE rels AS
SELECT c.*, format('%s %s', CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
                                         WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
                                         WHEN 'c' THEN 'composite type' WHEN 'f' THEN 'foreign table'
                                         ELSE 'relation' END, c.oid::regclass) AS obj
  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid;
INSERT INTO facts
SELECT r.obj, 1, format('kind %s, persistence %s, owner %s, options %s, row security %s/%s, replica identity %s, tablespace %s',
       r.relkind, r.relpersistence, pg_get_userbyid(r.relowner), r.reloptions, r.relrowsecurity, r.relforcerowsecurity,
       r.relreplident, r.reltablespace)
  FROM rels r;
INSERT INTO facts
SELECT r.obj, 2, 'acl ' || pg_temp.acl(r.relacl, CASE r.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", r.relowner) FROM rels r;
INSERT INTO facts
SELECT r.obj, 3, 'comment ' || coalesce(quote_literal(obj_description(r.oid, 'pg_class')), 'none') FROM rels r;
INSERT INTO facts
SELECT r.obj, 100 + a.attnum,
       format('column %s %s%s%s%s%s%s, acl %s, options %s, comment %s', a.attname, format_type(a.atttypid, a.atttypmod),
              CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
              CASE WHEN ad.adbin IS NOT NULL THEN ' DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid) ELSE '' END,
              CASE WHEN a.attidentity <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END,
              CASE WHEN a.attgenerated <> '' THEN ' GENERATED ' || a.attgenerated::text ELSE '' END,
              CASE WHEN a.attcollation <> 0 AND a.attcollation <> (SELECT typcollation FROM pg_type WHERE oid = a.atttypid)
                   THEN ' COLLATE ' || a.attcollation::regcollation ELSE '' END,
              pg_temp.acl(a.attacl, NULL, r.relowner),
              -- (this server stamps every column with a pg_attver option that differs per creation)
              ARRAY(SELECT o FROM unnest(a.attoptions) o WHERE o !~ '^pg_attver=' ORDER BY o),
              coalesce(quote_literal(col_description(r.oid, a.attnum)), 'none'))
  FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = r.oid AND ad.adnum = a.attnum;
INSERT INTO facts
SELECT r.obj, 1000, format('constraint %s %s, comment %s', co.conname, pg_get_constraintdef(co.oid),
       coalesce(quote_literal(obj_description(co.oid, 'pg_constraint')), 'none'))
  FROM rels r JOIN pg_constraint co ON co.conrelid = r.oid;
INSERT INTO facts
SELECT r.obj, 1001, format('index %s, comment %s', pg_get_indexdef(i.indexrelid),
       coalesce(quote_literal(obj_description(i.indexrelid, 'pg_class')), 'none'))
  FROM rels r JOIN pg_index i ON i.indrelid = r.oid;
INSERT INTO facts
SELECT r.obj, 1002, format('trigger %s, enabled %s, comment %s', pg_get_triggerdef(t.oid), t.tgenabled,
       coalesce(quote_literal(obj_description(t.oid, 'pg_trigger')), 'none'))
  FROM rels r JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal;
INSERT INTO facts
SELECT r.obj, 1003, format('policy %s %s %s to %s using %s with check %s', po.polname, po.polcmd, po.polpermissive,
       (SELECT string_agg(CASE x WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x) END, ',' ORDER BY 1) FROM unnest(po.polroles) x),
       pg_get_expr(po.polqual, po.polrelid), pg_get_expr(po.polwithcheck, po.polrelid))
  FROM rels r JOIN pg_policy po ON po.polrelid = r.oid;
INSERT INTO facts
SELECT r.obj, 1004, 'rule ' || pg_get_ruledef(ru.oid)
  FROM rels r JOIN pg_rewrite ru ON ru.ev_class = r.oid WHERE ru.rulename <> '_RETURN';
INSERT INTO facts
SELECT r.obj, 2000 + l.n::int, l.line
  FROM rels r, LATERAL regexp_split_to_table(pg_get_viewdef(r.oid), E'\n') WITH ORDINALITY l(line, n)
 WHERE r.relkind IN ('v', 'm');
INSERT INTO facts
SELECT r.obj, 3000, format('sequence %s start %s increment %s min %s max %s cache %s cycle %s, owned by %s',
       s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
       (SELECT format('%s.%s', d.refobjid::regclass, a.attname) FROM pg_depend d
          JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_class'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
           AND d.deptype IN ('a', 'i')))
  FROM rels r JOIN pg_sequence s ON s.seqrelid = r.oid;

-- Types (enums, domains, composite and base types created by the extension).
INSERT INTO facts
SELECT 'type ' || format_type(t.oid, NULL), 1,
       format('kind %s, owner %s, acl %s, comment %s, enum labels %s, domain over %s not null %s default %s, constraints %s',
              t.typtype, pg_get_userbyid(t.typowner), pg_temp.acl(t.typacl, 'T', t.typowner),
              coalesce(quote_literal(obj_description(t.oid, 'pg_type')), 'none'),
              (SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid),
              CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END, t.typnotnull, t.typdefault,
              (SELECT string_agg(pg_get_constraintdef(oid), ', ' ORDER BY conname) FROM pg_constraint WHERE contypid = t.oid))
  FROM members m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid;

-- The schema: owner, ACL, comment, default privileges, membership.
INSERT INTO facts
SELECT 'schema ' || n.nspname, 1, format('owner %s, acl %s, comment %s, extension member %s', pg_get_userbyid(n.nspowner),
       pg_temp.acl(n.nspacl, 'n', n.nspowner), coalesce(quote_literal(obj_description(n.oid, 'pg_namespace')), 'none'),
       EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_namespace'::regclass AND m.objid = n.oid))
  FROM pg_namespace n JOIN pg_extension e ON n.oid = e.extnamespace WHERE e.extname = :'ext';
INSERT INTO facts
SELECT 'schema ' || n.nspname, 2, format('default privileges of %s on %s: %s', pg_get_userbyid(d.defaclrole),
       d.defaclobjtype, pg_temp.acl(d.defaclacl, NULL, d.defaclrole))
  FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace
  JOIN pg_extension e ON n.oid = e.extnamespace WHERE e.extname = :'ext';
-- Objects in the schema that are not the extension's (an update script's leftovers).
INSERT INTO facts
SELECT 'schema ' || n.nspname, 3, 'object not owned by the extension: ' || pg_describe_object(x.classid, x.oid, 0)
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace,
       LATERAL (SELECT 'pg_class'::regclass AS classid, c.oid FROM pg_class c
                 WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'c', 'f')
                UNION ALL SELECT 'pg_proc'::regclass, p.oid FROM pg_proc p WHERE p.pronamespace = n.oid
                UNION ALL SELECT 'pg_type'::regclass, t.oid FROM pg_type t
                 WHERE t.typnamespace = n.oid AND t.typrelid = 0 AND t.typelem = 0) x
 WHERE e.extname = :'ext'
   AND NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = x.classid AND m.objid = x.oid);

-- Initial privileges recorded for the members: what pg_dump treats as the extension's own.
INSERT INTO facts
SELECT 'init privileges ' || pg_describe_object(ip.classoid, ip.objoid, ip.objsubid), 1,
       format('%s: %s', ip.privtype, pg_temp.acl(ip.initprivs, NULL, 0))
  FROM pg_init_privs ip JOIN members m ON m.classid = ip.classoid AND m.objid = ip.objoid;

SELECT obj || ' | ' || coalesce(fact, '') FROM facts ORDER BY obj, seq, fact;
SQL

describe() {  # describe DB FILE
    "$PSQL" -XAtq -v ON_ERROR_STOP=1 -v ext="$ext" -d "$1" -f "$tmp/describe.sql" >"$2" 2>&1
}
if describe "$upgraded" "$tmp/upgraded.txt" && describe "$fresh" "$tmp/fresh.txt"; then
    ok "both databases describe the extension's objects"
    counts=$(q "$fresh" "SELECT count(*) FILTER (WHERE classid = 'pg_proc'::regclass) || ' functions, '
                             || count(*) FILTER (WHERE classid = 'pg_class'::regclass) || ' relations'
                          FROM pg_depend d JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
                         WHERE e.extname = '$ext' AND d.deptype = 'e'")
    if diff -u --label "CREATE EXTENSION $ext VERSION '$from'; ALTER EXTENSION $ext UPDATE" "$tmp/upgraded.txt" \
            --label "CREATE EXTENSION $ext" "$tmp/fresh.txt" >"$tmp/describe.diff"; then
        ok "updated and fresh installations are identical ($counts; $(wc -l <"$tmp/fresh.txt") facts)"
    else
        not_ok "updated and fresh installations differ ($(grep -c '^[-+][^-+]' "$tmp/describe.diff") facts differ):"
        cut -c 1-400 "$tmp/describe.diff" | head -n 80 | sed 's/^/#   /'
    fi
else
    not_ok "describing the extension's objects failed: $(cat "$tmp/upgraded.txt" "$tmp/fresh.txt" 2>/dev/null | grep -m 3 ERROR)"
fi

elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
echo "# $((elapsed / 1000)).$(printf '%03d' $((elapsed % 1000))) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
