package sources

// DeltaVacuumNote is what a change report says about a Delta table whose
// rows were deleted or changed: the change is a new table version, and the
// data files it replaced still hold the old rows until VACUUM deletes them.
const DeltaVacuumNote = "Delta table: the change was committed as a new table version, but the data files it replaced " +
	"still hold the old rows (readable by time travel and by anyone reading the files) until the table is VACUUMed " +
	"after its retention period (delta.deletedFileRetentionDuration, 7 days by default); run VACUUM to complete the erasure."

// ChangeNote is what the erasure and rectification reports say about the
// dataset beside their counts when its records were changed: for a Delta
// table, DeltaVacuumNote; "" for every other dataset.
func (d *Dataset) ChangeNote() string {
	if d != nil && d.Format == FormatDelta {
		return DeltaVacuumNote
	}
	return ""
}
