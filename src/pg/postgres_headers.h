// The only way src/pg/ includes PostgreSQL: C headers inside extern "C".
// src/core/ never includes this file (checked by tests/check_header_firewall.sh).
#pragma once

extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
#include "utils/regproc.h"
#include "utils/guc.h"
#include "utils/tuplestore.h"
#include "commands/trigger.h"
#include "catalog/pg_authid.h"
#include "utils/acl.h"
#include "storage/fd.h"
}
