//go:build race

package arena

// raceEnabled: the race runtime maps memory of its own right where an
// unmapped arena was, so address checks do not hold under -race.
const raceEnabled = true
