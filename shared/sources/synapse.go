package sources

import (
	"fmt"
	"strings"
)

// SynapseSystemFolders are the folders Azure Synapse Link for Dataverse
// keeps at the root of its container next to the tables: metadata, logs and
// sync failures, never table data. A "synapse" dataset never reads them, and
// an entity may not be named like them.
var SynapseSystemFolders = []string{"OptionsetMetadata", "Microsoft.Athena.TrickleFeedService", "Changelog", "EntitySyncFailure"}

// IsSynapseSystemFolder reports whether a folder at the root of a Synapse
// Link container is one of SynapseSystemFolders (case-insensitively).
func IsSynapseSystemFolder(name string) bool {
	for _, f := range SynapseSystemFolders {
		if strings.EqualFold(f, name) {
			return true
		}
	}
	return false
}

// validSynapse checks the location of a "synapse" dataset: a container, a
// prefix that is the folder holding model.json ("" for the container root,
// else ending in "/"), no blob, and an entity (a table name, no "/").
func validSynapse(d *Dataset, where string) error {
	if d.Format != FormatSynapse {
		return fmt.Errorf("%s.entity: only a dataset of format %q names an entity", where, FormatSynapse)
	}
	if d.Blob != "" {
		return fmt.Errorf("%s.blob: a synapse dataset is a table of a Synapse Link folder: set prefix (the folder holding model.json, \"\" for the container root) and entity, not blob", where)
	}
	if d.Prefix != "" && !strings.HasSuffix(d.Prefix, "/") {
		return fmt.Errorf("%s.prefix: a synapse dataset's prefix is the folder holding model.json and ends with \"/\" (\"\" for the container root)", where)
	}
	switch {
	case strings.TrimSpace(d.Entity) == "":
		return fmt.Errorf("%s.entity: required for a synapse dataset (the table's name in model.json)", where)
	case d.Entity != strings.TrimSpace(d.Entity) || strings.ContainsAny(d.Entity, "/\\"):
		return fmt.Errorf("%s.entity: %q is not a table name", where, d.Entity)
	case IsSynapseSystemFolder(d.Entity):
		return fmt.Errorf("%s.entity: %q is a Synapse Link system folder, not a table", where, d.Entity)
	}
	return nil
}
