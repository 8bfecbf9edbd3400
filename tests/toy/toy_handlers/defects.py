from protoconform.mockserver.control.defects import Defect

DEFECTS = {
    "toy.get-wrong-status": Defect(
        "GetToy answers INVALID_ARGUMENT instead of NOT_FOUND for a missing toy",
        rule="toy.get.not-found",
        methods=("Toys.GetToy",),
    )
}
