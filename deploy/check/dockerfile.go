package check

func (c *checker) checkDockerfile() {}
