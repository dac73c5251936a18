// Removing a lab: what `cwctl lab down` does, and what `up` does when it fails or is interrupted.
#pragma once

#include <ostream>
#include <string>

namespace cw::lab {

// Stops every process of the lab (those living in its namespaces, and the recorded ones that
// are still the same processes), deletes its namespaces, /etc/netns entries, unused UAPI
// sockets and, only when all of that worked, its state directory. Returns 0 when the lab is
// gone, 1 when something is left (said on err; the state directory is kept for another try).
// The caller checks the name and root.
int remove_lab(const std::string& lab, std::ostream& out, std::ostream& err);

}  // namespace cw::lab
