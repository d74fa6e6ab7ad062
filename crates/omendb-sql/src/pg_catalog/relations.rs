//! The tables of `pg_catalog`, with PostgreSQL 15's columns, and their
//! rows made from the storage catalog.

use omendb_storage::{TableDef, name_in_schema, schema_of};

use super::rows::{Cell, Table};
use super::types::{self, TYPES};
use super::{
    CatalogView, DATABASE_OID, Definition, PG_CATALOG, SUPERUSER, SUPERUSER_OID, schema_oid,
    table_oid,
};

const fn table(
    name: &'static str,
    columns: &'static str,
    rows: fn(&CatalogView, &mut Table),
) -> Definition {
    Definition {
        schema: PG_CATALOG,
        name,
        columns,
        rows: Some(rows),
    }
}

/// A catalog of a feature OmenDB does not have: never a row.
const fn empty(name: &'static str, columns: &'static str) -> Definition {
    Definition {
        schema: PG_CATALOG,
        name,
        columns,
        rows: None,
    }
}

const PG_CLASS: &str = "oid:oid relname:name relnamespace:oid reltype:oid reloftype:oid \
    relowner:oid relam:oid relfilenode:oid reltablespace:oid relpages:int4 reltuples:float4 \
    relallvisible:int4 reltoastrelid:oid relhasindex:bool relisshared:bool relpersistence:char \
    relkind:char relnatts:int2 relchecks:int2 relhasrules:bool relhastriggers:bool \
    relhassubclass:bool relrowsecurity:bool relforcerowsecurity:bool relispopulated:bool \
    relreplident:char relispartition:bool relrewrite:oid relfrozenxid:xid relminmxid:xid \
    relacl:aclitem[] reloptions:text[] relpartbound:pg_node_tree";

const PG_ATTRIBUTE: &str = "attrelid:oid attname:name atttypid:oid attstattarget:int4 \
    attlen:int2 attnum:int2 attndims:int4 attcacheoff:int4 atttypmod:int4 attbyval:bool \
    attalign:char attstorage:char attcompression:char attnotnull:bool atthasdef:bool \
    atthasmissing:bool attidentity:char attgenerated:char attisdropped:bool attislocal:bool \
    attinhcount:int4 attcollation:oid attacl:aclitem[] attoptions:text[] attfdwoptions:text[] \
    attmissingval:anyarray";

const PG_INDEX: &str = "indexrelid:oid indrelid:oid indnatts:int2 indnkeyatts:int2 \
    indisunique:bool indnullsnotdistinct:bool indisprimary:bool indisexclusion:bool \
    indimmediate:bool indisclustered:bool indisvalid:bool indcheckxmin:bool indisready:bool \
    indislive:bool indisreplident:bool indkey:int2vector indcollation:oidvector \
    indclass:oidvector indoption:int2vector indexprs:pg_node_tree indpred:pg_node_tree";

const PG_CONSTRAINT: &str = "oid:oid conname:name connamespace:oid contype:char \
    condeferrable:bool condeferred:bool convalidated:bool conrelid:oid contypid:oid \
    conindid:oid conparentid:oid confrelid:oid confupdtype:char confdeltype:char \
    confmatchtype:char conislocal:bool coninhcount:int4 connoinherit:bool conkey:int2[] \
    confkey:int2[] conpfeqop:oid[] conppeqop:oid[] conffeqop:oid[] confdelsetcols:int2[] \
    conexclop:oid[] conbin:pg_node_tree";

const PG_TYPE: &str = "oid:oid typname:name typnamespace:oid typowner:oid typlen:int2 \
    typbyval:bool typtype:char typcategory:char typispreferred:bool typisdefined:bool \
    typdelim:char typrelid:oid typsubscript:regproc typelem:oid typarray:oid typinput:regproc \
    typoutput:regproc typreceive:regproc typsend:regproc typmodin:regproc typmodout:regproc \
    typanalyze:regproc typalign:char typstorage:char typnotnull:bool typbasetype:oid \
    typtypmod:int4 typndims:int4 typcollation:oid typdefaultbin:pg_node_tree typdefault:text \
    typacl:aclitem[]";

const PG_DATABASE: &str = "oid:oid datname:name datdba:oid encoding:int4 datlocprovider:char \
    datistemplate:bool datallowconn:bool datconnlimit:int4 datfrozenxid:xid datminmxid:xid \
    dattablespace:oid datcollate:text datctype:text daticulocale:text datcollversion:text \
    datacl:aclitem[]";

const PG_ROLES: &str = "rolname:name rolsuper:bool rolinherit:bool rolcreaterole:bool \
    rolcreatedb:bool rolcanlogin:bool rolreplication:bool rolconnlimit:int4 rolpassword:text \
    rolvaliduntil:timestamptz rolbypassrls:bool rolconfig:text[] oid:oid";

const PG_USER: &str = "usename:name usesysid:oid usecreatedb:bool usesuper:bool \
    userepl:bool usebypassrls:bool passwd:text valuntil:timestamptz useconfig:text[]";

const PG_SETTINGS: &str = "name:text setting:text unit:text category:text short_desc:text \
    extra_desc:text context:text vartype:text source:text min_val:text max_val:text \
    enumvals:text[] boot_val:text reset_val:text sourcefile:text sourceline:int4 \
    pending_restart:bool";

pub(super) const DEFINITIONS: &[Definition] = &[
    table(
        "pg_namespace",
        "oid:oid nspname:name nspowner:oid nspacl:aclitem[]",
        namespaces,
    ),
    table("pg_class", PG_CLASS, classes),
    table("pg_attribute", PG_ATTRIBUTE, attributes),
    table("pg_index", PG_INDEX, indexes),
    table("pg_constraint", PG_CONSTRAINT, constraints),
    table(
        "pg_attrdef",
        "oid:oid adrelid:oid adnum:int2 adbin:pg_node_tree",
        defaults,
    ),
    table("pg_type", PG_TYPE, pg_types),
    table(
        "pg_am",
        "oid:oid amname:name amhandler:regproc amtype:char",
        access_methods,
    ),
    table("pg_database", PG_DATABASE, databases),
    table("pg_roles", PG_ROLES, roles),
    table("pg_user", PG_USER, users),
    table(
        "pg_collation",
        "oid:oid collname:name collnamespace:oid collowner:oid collprovider:char \
         collisdeterministic:bool collencoding:int4 collcollate:text collctype:text \
         colliculocale:text collversion:text",
        collations,
    ),
    table(
        "pg_tables",
        "schemaname:name tablename:name tableowner:name tablespace:name hasindexes:bool \
         hasrules:bool hastriggers:bool rowsecurity:bool",
        pg_tables,
    ),
    table(
        "pg_indexes",
        "schemaname:name tablename:name indexname:name tablespace:name indexdef:text",
        pg_indexes,
    ),
    table("pg_settings", PG_SETTINGS, pg_settings),
    table(
        "pg_opclass",
        "oid:oid opcmethod:oid opcname:name opcnamespace:oid opcowner:oid opcfamily:oid \
         opcintype:oid opcdefault:bool opckeytype:oid",
        operator_classes,
    ),
    table(
        "pg_tablespace",
        "oid:oid spcname:name spcowner:oid spcacl:aclitem[] spcoptions:text[]",
        tablespaces,
    ),
    empty(
        "pg_auth_members",
        "roleid:oid member:oid grantor:oid admin_option:bool",
    ),
    empty(
        "pg_inherits",
        "inhrelid:oid inhparent:oid inhseqno:int4 inhdetachpending:bool",
    ),
    empty(
        "pg_policy",
        "oid:oid polname:name polrelid:oid polcmd:char polpermissive:bool polroles:oid[] \
         polqual:pg_node_tree polwithcheck:pg_node_tree",
    ),
    empty(
        "pg_statistic_ext",
        "oid:oid stxrelid:oid stxname:name stxnamespace:oid stxowner:oid stxstattarget:int4 \
         stxkeys:int2vector stxkind:char[] stxexprs:pg_node_tree",
    ),
    empty(
        "pg_publication",
        "oid:oid pubname:name pubowner:oid puballtables:bool pubinsert:bool pubupdate:bool \
         pubdelete:bool pubtruncate:bool pubviaroot:bool",
    ),
    empty(
        "pg_publication_namespace",
        "oid:oid pnpubid:oid pnnspid:oid",
    ),
    empty(
        "pg_publication_rel",
        "oid:oid prpubid:oid prrelid:oid prqual:pg_node_tree prattrs:int2vector",
    ),
    empty(
        "pg_description",
        "objoid:oid classoid:oid objsubid:int4 description:text",
    ),
    empty(
        "pg_shdescription",
        "objoid:oid classoid:oid description:text",
    ),
    empty(
        "pg_trigger",
        "oid:oid tgrelid:oid tgparentid:oid tgname:name tgfoid:oid tgtype:int2 \
         tgenabled:char tgisinternal:bool tgconstrrelid:oid tgconstrindid:oid \
         tgconstraint:oid tgdeferrable:bool tginitdeferred:bool tgnargs:int2 \
         tgattr:int2vector tgargs:bytea tgqual:pg_node_tree tgoldtable:name tgnewtable:name",
    ),
    empty(
        "pg_partitioned_table",
        "partrelid:oid partstrat:char partnatts:int2 partdefid:oid partattrs:int2vector \
         partclass:oidvector partcollation:oidvector partexprs:pg_node_tree",
    ),
    empty(
        "pg_sequence",
        "seqrelid:oid seqtypid:oid seqstart:int8 seqincrement:int8 seqmax:int8 seqmin:int8 \
         seqcache:int8 seqcycle:bool",
    ),
    empty(
        "pg_enum",
        "oid:oid enumtypid:oid enumsortorder:float4 enumlabel:name",
    ),
    empty(
        "pg_extension",
        "oid:oid extname:name extowner:oid extnamespace:oid extrelocatable:bool \
         extversion:text extconfig:oid[] extcondition:text[]",
    ),
    empty(
        "pg_views",
        "schemaname:name viewname:name viewowner:name definition:text",
    ),
    empty(
        "pg_matviews",
        "schemaname:name matviewname:name matviewowner:name tablespace:name \
         hasindexes:bool ispopulated:bool definition:text",
    ),
    empty(
        "pg_proc",
        "oid:oid proname:name pronamespace:oid proowner:oid prolang:oid procost:float4 \
         prorows:float4 provariadic:oid prosupport:regproc prokind:char prosecdef:bool \
         proleakproof:bool proisstrict:bool proretset:bool provolatile:char \
         proparallel:char pronargs:int2 pronargdefaults:int2 prorettype:oid \
         proargtypes:oidvector proallargtypes:oid[] proargmodes:char[] proargnames:text[] \
         proargdefaults:pg_node_tree protrftypes:oid[] prosrc:text probin:text \
         prosqlbody:pg_node_tree proconfig:text[] proacl:aclitem[]",
    ),
    empty(
        "pg_depend",
        "classid:oid objid:oid objsubid:int4 refclassid:oid refobjid:oid refobjsubid:int4 \
         deptype:char",
    ),
    empty(
        "pg_foreign_table",
        "ftrelid:oid ftserver:oid ftoptions:text[]",
    ),
    empty(
        "pg_rewrite",
        "oid:oid rulename:name ev_class:oid ev_type:char ev_enabled:char is_instead:bool \
         ev_qual:pg_node_tree ev_action:pg_node_tree",
    ),
];

fn namespaces(view: &CatalogView, table: &mut Table) {
    for schema in view.schemas() {
        table
            .row()
            .set("oid", schema_oid(schema))
            .set("nspname", schema)
            .set("nspowner", SUPERUSER_OID);
    }
}

fn classes(view: &CatalogView, table: &mut Table) {
    for def in view.tables() {
        let indexes = view.indexes(def);
        class_row(table, def, table_oid(def.id), name_in_schema(&def.name))
            .set("relkind", 'r')
            .set("relam", 2u32)
            .set("relhasindex", !indexes.is_empty())
            .set("relnatts", column_count(def.columns.len()));
        for index in indexes {
            class_row(table, def, index.oid, &index.name)
                .set("relkind", 'i')
                .set("relam", 403u32)
                .set("relnatts", column_count(index.positions.len()));
        }
    }
}

fn column_count(n: usize) -> i16 {
    i16::try_from(n).unwrap_or(i16::MAX)
}

/// A `pg_class` row of a relation of `def`'s schema; the caller sets its
/// kind, access method and column count.
fn class_row<'t>(
    table: &'t mut Table,
    def: &TableDef,
    oid: u32,
    name: &str,
) -> super::rows::Row<'t> {
    let mut row = table.row();
    row.set("oid", oid)
        .set("relname", name)
        .set("relnamespace", schema_oid(schema_of(&def.name)))
        .set("relowner", SUPERUSER_OID)
        .set("relfilenode", oid)
        .set("reltuples", -1.0f32)
        .set("relpersistence", 'p')
        .set("relispopulated", true)
        .set("relreplident", 'd');
    row
}

fn attributes(view: &CatalogView, table: &mut Table) {
    for def in view.tables() {
        for (i, column) in def.columns.iter().enumerate() {
            let (oid, typmod) = types::column_type(&column.data_type);
            attribute_row(table, table_oid(def.id), &column.name, i, oid, typmod)
                .set("attnotnull", !column.nullable)
                .set("atthasdef", column.default.is_some());
        }
        for index in view.indexes(def) {
            for (i, &p) in index.positions.iter().enumerate() {
                let column = &def.columns[p];
                let (oid, typmod) = types::column_type(&column.data_type);
                attribute_row(table, index.oid, &column.name, i, oid, typmod);
            }
        }
    }
}

fn attribute_row<'t>(
    table: &'t mut Table,
    relation: u32,
    name: &str,
    position: usize,
    type_oid: u32,
    typmod: i32,
) -> super::rows::Row<'t> {
    let ty = types::by_oid(type_oid);
    let mut row = table.row();
    row.set("attrelid", relation)
        .set("attname", name)
        .set("atttypid", type_oid)
        .set("attstattarget", -1i32)
        .set("attlen", ty.map_or(-1, |t| t.len))
        .set("attnum", attnum(position))
        .set("attcacheoff", -1i32)
        .set("atttypmod", typmod)
        .set("attbyval", ty.is_some_and(|t| t.by_value))
        .set("attalign", ty.map_or('i', |t| t.align))
        .set(
            "attstorage",
            if ty.is_some_and(|t| t.len > 0) {
                'p'
            } else {
                'x'
            },
        )
        .set("attcompression", "")
        .set("attidentity", "")
        .set("attgenerated", "")
        .set("attislocal", true)
        .set("attcollation", ty.map_or(0, |t| t.collation));
    row
}

/// A column's `attnum`: its position, from 1.
fn attnum(position: usize) -> i16 {
    i16::try_from(position + 1).unwrap_or(i16::MAX)
}

fn indexes(view: &CatalogView, table: &mut Table) {
    for def in view.tables() {
        for index in view.indexes(def) {
            let keys: Vec<i16> = index.positions.iter().map(|&p| attnum(p)).collect();
            let n = column_count(keys.len());
            let opclasses = index
                .positions
                .iter()
                .map(|&p| types::default_opclass(types::column_type(&def.columns[p].data_type).0))
                .collect();
            table
                .row()
                .set("indexrelid", index.oid)
                .set("indrelid", table_oid(def.id))
                .set("indnatts", n)
                .set("indnkeyatts", n)
                .set("indisunique", true)
                .set("indisprimary", index.primary)
                .set("indimmediate", true)
                .set("indisvalid", true)
                .set("indisready", true)
                .set("indislive", true)
                .set("indcollation", Cell::Oids(vec![0; keys.len()]))
                .set("indclass", Cell::Oids(opclasses))
                .set("indoption", Cell::Int2s(vec![0; keys.len()]))
                .set("indkey", Cell::Int2s(keys));
        }
    }
}

fn constraints(view: &CatalogView, table: &mut Table) {
    for def in view.tables() {
        for index in view.indexes(def) {
            let keys: Vec<i16> = index.positions.iter().map(|&p| attnum(p)).collect();
            table
                .row()
                .set("oid", index.oid)
                .set("conname", index.name.as_str())
                .set("connamespace", schema_oid(schema_of(&def.name)))
                .set("contype", if index.primary { 'p' } else { 'u' })
                .set("convalidated", true)
                .set("conrelid", table_oid(def.id))
                .set("conindid", index.oid)
                .set("confupdtype", ' ')
                .set("confdeltype", ' ')
                .set("confmatchtype", ' ')
                .set("conislocal", true)
                .set("connoinherit", true)
                .set("conkey", Cell::Int2s(keys));
        }
    }
}

fn defaults(view: &CatalogView, table: &mut Table) {
    for def in view.tables() {
        for (i, column) in def.columns.iter().enumerate() {
            if let Some(default) = &column.default {
                table
                    .row()
                    .set("adrelid", table_oid(def.id))
                    .set("adnum", attnum(i))
                    .set("adbin", default.as_str());
            }
        }
    }
}

fn pg_types(_view: &CatalogView, table: &mut Table) {
    for t in TYPES {
        let namespace = if t.oid == types::VECTOR_OID {
            schema_oid(omendb_storage::PUBLIC_SCHEMA)
        } else {
            schema_oid(PG_CATALOG)
        };
        let input = match (t.category, t.name.starts_with('_')) {
            ('A', true) => "array_in".to_owned(),
            _ => format!("{}in", t.name),
        };
        table
            .row()
            .set("oid", t.oid)
            .set("typname", t.name)
            .set("typnamespace", namespace)
            .set("typowner", SUPERUSER_OID)
            .set("typlen", t.len)
            .set("typbyval", t.by_value)
            .set("typtype", t.kind)
            .set("typcategory", t.category)
            .set("typisdefined", true)
            .set("typdelim", ',')
            .set("typelem", t.element)
            .set("typarray", t.array)
            .set("typalign", t.align)
            .set("typstorage", if t.len > 0 { 'p' } else { 'x' })
            .set("typtypmod", -1i32)
            .set("typcollation", t.collation)
            // Clients compare `typinput` with `'array_in'::regproc`; the
            // name is what they read.
            .set(
                "typinput",
                Cell::Oid(if input == "array_in" { 750 } else { 0 }),
            );
    }
}

fn access_methods(_view: &CatalogView, table: &mut Table) {
    for (oid, name, kind) in [(2u32, "heap", 't'), (403, "btree", 'i')] {
        table
            .row()
            .set("oid", oid)
            .set("amname", name)
            .set("amtype", kind);
    }
}

fn databases(_view: &CatalogView, table: &mut Table) {
    table
        .row()
        .set("oid", DATABASE_OID)
        .set("datname", "omendb")
        .set("datdba", SUPERUSER_OID)
        .set("encoding", 6i32)
        .set("datlocprovider", 'c')
        .set("datallowconn", true)
        .set("datconnlimit", -1i32)
        .set("dattablespace", 1663u32)
        .set("datcollate", "C")
        .set("datctype", "C");
}

fn roles(_view: &CatalogView, table: &mut Table) {
    let mut row = table.row();
    row.set("rolname", SUPERUSER)
        .set("rolconnlimit", -1i32)
        .set("rolpassword", "********")
        .set("oid", SUPERUSER_OID);
    for flag in [
        "rolsuper",
        "rolinherit",
        "rolcreaterole",
        "rolcreatedb",
        "rolcanlogin",
        "rolreplication",
        "rolbypassrls",
    ] {
        row.set(flag, true);
    }
}

fn users(_view: &CatalogView, table: &mut Table) {
    let mut row = table.row();
    row.set("usename", SUPERUSER)
        .set("usesysid", SUPERUSER_OID)
        .set("passwd", "********");
    for flag in ["usecreatedb", "usesuper", "userepl", "usebypassrls"] {
        row.set(flag, true);
    }
}

fn collations(_view: &CatalogView, table: &mut Table) {
    for (oid, name, provider) in [
        (100u32, "default", 'd'),
        (950, "C", 'c'),
        (951, "POSIX", 'c'),
    ] {
        let mut row = table.row();
        row.set("oid", oid)
            .set("collname", name)
            .set("collnamespace", schema_oid(PG_CATALOG))
            .set("collowner", SUPERUSER_OID)
            .set("collprovider", provider)
            .set("collisdeterministic", true)
            .set("collencoding", -1i32);
        if provider == 'c' {
            row.set("collcollate", name).set("collctype", name);
        }
    }
}

fn pg_tables(view: &CatalogView, table: &mut Table) {
    for def in view.tables() {
        table
            .row()
            .set("schemaname", schema_of(&def.name))
            .set("tablename", name_in_schema(&def.name))
            .set("tableowner", SUPERUSER)
            .set("hasindexes", !view.indexes(def).is_empty());
    }
}

fn pg_indexes(view: &CatalogView, table: &mut Table) {
    for def in view.tables() {
        for index in view.indexes(def) {
            table
                .row()
                .set("schemaname", schema_of(&def.name))
                .set("tablename", name_in_schema(&def.name))
                .set("indexname", index.name.as_str())
                .set("indexdef", index.definition());
        }
    }
}

fn pg_settings(view: &CatalogView, table: &mut Table) {
    for (name, value) in &view.settings {
        table
            .row()
            .set("name", *name)
            .set("setting", value.as_str())
            .set("context", "user")
            .set("vartype", "string")
            .set("source", "session")
            .set("boot_val", value.as_str())
            .set("reset_val", value.as_str());
    }
}

fn operator_classes(_view: &CatalogView, table: &mut Table) {
    for &(oid, name, input, family) in types::OPCLASSES {
        table
            .row()
            .set("oid", oid)
            .set("opcmethod", 403u32)
            .set("opcname", name)
            .set("opcnamespace", schema_oid(PG_CATALOG))
            .set("opcowner", SUPERUSER_OID)
            .set("opcfamily", family)
            .set("opcintype", input)
            .set("opcdefault", true);
    }
}

fn tablespaces(_view: &CatalogView, table: &mut Table) {
    for (oid, name) in [(1663u32, "pg_default"), (1664, "pg_global")] {
        table
            .row()
            .set("oid", oid)
            .set("spcname", name)
            .set("spcowner", SUPERUSER_OID);
    }
}
