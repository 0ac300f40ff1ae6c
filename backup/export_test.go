package backup

// ForgetVersionChecks forgets the restic versions this process checked, as
// a new process would start.
func ForgetVersionChecks() {
	checkedVersions.Clear()
	keptVersions.Clear()
}
