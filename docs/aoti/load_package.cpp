// Load an AOTInductor package written by rule package_aoti and run one image, without Python.
// Build with libtorch from the torch wheel, T=$(python -c "import torch, os; print(os.path.dirname(torch.__file__))");
// torch 2.14's headers need C++20 (tests/test_pt2e.py::test_cpp_loader_runs_a_package builds this line):
//   g++ -std=c++20 load_package.cpp -I$T/include -I$T/include/torch/csrc/api/include \
//       -L$T/lib -ltorch -ltorch_cpu -lc10 -Wl,-rpath,$T/lib -o load_package
// Run: ./load_package results/<m>/<v>/pytorch-aoti/model.pt2 224
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/torch.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: load_package MODEL.pt2 SIZE\n";
    return 2;
  }
  torch::inductor::AOTIModelPackageLoader loader(argv[1]);
  const int64_t size = std::stoll(argv[2]);
  std::vector<at::Tensor> out = loader.run({torch::zeros({1, 3, size, size})});
  std::cout << "logits " << out[0].sizes() << " argmax " << out[0].argmax(1).item<int64_t>() << "\n";
  return 0;
}
